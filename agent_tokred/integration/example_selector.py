"""A LangChain example selector that fills a token budget with the most useful examples.

Drop-in for ``FewShotPromptTemplate`` / ``FewShotChatMessagePromptTemplate``: where LangChain's
``LengthBasedExampleSelector`` counts words and keeps list order, and the similarity / MMR selectors
take a fixed ``k``, :class:`BudgetedExampleSelector` finds the query's cluster among its best
matches (an adaptive relevance cut) and packs it per token, relevance and diversity weighed, within
``max_tokens`` of the caller's tokenizer, counted on the examples as ``example_prompt`` renders them
and ``separator`` joins them. The engine is :class:`agent_tokred.examples.ExamplePool`.

Example:
    >>> from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
    >>> import numpy as np
    >>> fake = lambda ts: np.array([[t.count("add"), t.count("spell"), 0.1] for t in ts])
    >>> prompt = PromptTemplate.from_template("Q: {question}\\nA: {answer}")
    >>> selector = BudgetedExampleSelector(
    ...     [{"question": "add 2 and 3", "answer": "5"}, {"question": "spell cat", "answer": "c-a-t"}],
    ...     max_tokens=40, example_prompt=prompt, input_keys=["question"], embeddings=fake)
    >>> few_shot = FewShotPromptTemplate(example_selector=selector, example_prompt=prompt,
    ...     prefix="", suffix="Q: {question}\\nA:", input_variables=["question"])
    >>> print(few_shot.format(question="add 4 and 4"))
    Q: add 2 and 3
    A: 5
    <BLANKLINE>
    Q: add 4 and 4
    A:
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.example_selectors.base import BaseExampleSelector
from langchain_core.runnables.config import run_in_executor

from .._example_select import as_compression
from ..errors import BudgetError, InvalidInputError
from ..examples import ExampleCompression, ExamplePool, ExampleSelection, SelectionPolicy

POOL_OPTIONS = ("tokenizer", "separator", "compressible_key", "cache", "embed_name")

class BudgetedExampleSelector(BaseExampleSelector):
    """Selects the examples worth their tokens for each input, within ``max_tokens``.

    Args:
        examples: the example pool (dicts of strings).
        max_tokens: tokens allowed for the rendered examples, separators included.
        example_prompt: a ``PromptTemplate`` (or a chat prompt, counted as its ``format`` string) or a
            ``Callable[[dict], str]``; what is rendered is what is counted (default ``key: value`` lines).
        input_keys: example keys matched against the same keys of the prompt's input (default: all
            example keys, and all input values sorted by key, as LangChain's similarity selector).
        embeddings: a LangChain ``Embeddings`` object, a ``Callable[[list[str]], array]`` or ``None``
            for the shipped MiniLM. Pool embeddings are computed once and cached per pool.
        vectors: precomputed embeddings of ``examples`` (one row each).
        policy: the relevance / diversity / length trade-off (see :class:`SelectionPolicy`).
        compress: compress chosen examples' ``compressible_key`` so more examples fit: ``True`` (about
            half, with :func:`agent_tokred.compress`) or an :class:`~agent_tokred.examples.ExampleCompression`
            with its rate and compressor (checked here, at construction).
        **pool_options: :class:`~agent_tokred.examples.ExamplePool`'s own options, passed as they are:
            ``tokenizer`` (the caller's, see :func:`agent_tokred.tokens.resolve_counter`),
            ``separator`` (must match the few-shot template's ``example_separator``, ``"\\n\\n"``),
            ``compressible_key`` (the reasoning field compression may shorten; the answer is never
            touched), ``cache`` (pool embeddings on disk by content hash: ``True`` or a file path)
            and ``embed_name`` (names custom ``embeddings`` in that cache).

    Raises:
        BudgetError: ``max_tokens`` is not a positive int.
        InvalidInputError: an example misses a key the prompt or ``input_keys`` need (named), or an
            option is none of the above.
    """

    def __init__(
        self,
        examples: Iterable[Mapping[str, Any]] = (),
        *,
        max_tokens: int,
        example_prompt: Any = None,
        input_keys: Sequence[str] | None = None,
        embeddings: Any = None,
        vectors: Any = None,
        policy: SelectionPolicy | None = None,
        compress: bool | ExampleCompression = False,
        **pool_options: Any,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise BudgetError(f"max_tokens must be a positive int of tokens; got {max_tokens!r}")
        unknown = sorted(set(pool_options) - set(POOL_OPTIONS))
        if unknown:
            raise InvalidInputError(f"unknown option {unknown[0]!r}; the pool's options are {', '.join(POOL_OPTIONS)}")
        self.max_tokens = max_tokens
        self.input_keys = list(input_keys) if input_keys is not None else None
        self.policy = policy or SelectionPolicy()
        self.compression = as_compression(compress)
        required = getattr(example_prompt, "input_variables", None)
        # LangChain's names for what the pool calls formatter / embed / embeddings; the rest as given
        self.pool = ExamplePool(examples, input_keys=input_keys, formatter=example_prompt, embed=embeddings,
                                embeddings=vectors, required_keys=list(required) if required else None,
                                **pool_options)
        self.last_selection: ExampleSelection | None = None

    def add_example(self, example: dict[str, str]) -> int:
        """Add one example (embedded now, once); return its pool id (an exact duplicate keeps its old id)."""
        return self.pool.add([example])[0]

    async def aadd_example(self, example: dict[str, str]) -> int:
        """Async twin of :meth:`add_example` (embedding runs in an executor)."""
        return await run_in_executor(None, self.add_example, example)

    def select(self, input_variables: Mapping[str, Any]) -> ExampleSelection:
        """The full selection record for ``input_variables`` (chosen examples, tokens used, reasons)."""
        selection = self.pool.select(
            self._query_text(input_variables),
            self.max_tokens,
            policy=self.policy,
            compress=self.compression or False,
        )
        self.last_selection = selection
        return selection

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        """The examples to render for ``input_variables``, within ``max_tokens`` (may be empty)."""
        return self.select(input_variables).examples

    async def aselect_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        """Async twin of :meth:`select_examples`."""
        return await run_in_executor(None, self.select_examples, input_variables)

    def _query_text(self, input_variables: Mapping[str, Any]) -> str:
        if not isinstance(input_variables, Mapping):
            raise InvalidInputError(f"input_variables must be a mapping; got {type(input_variables).__name__}")
        if self.input_keys is None:
            return "\n".join(str(input_variables[k]) for k in sorted(input_variables))
        missing = [k for k in self.input_keys if k not in input_variables]
        if missing:
            raise InvalidInputError(
                f"input is missing key {missing[0]!r} (input_keys={self.input_keys}); it has {sorted(input_variables)}"
            )
        return "\n".join(str(input_variables[k]) for k in self.input_keys)
