"""What happens at an early stop, with a LangChain chat model: probe the answer, or ask it to conclude.

* :func:`make_answer_probe` builds the stop rule's probe (DEER / Dynasor-CoT style): at a checkpoint
  the model is shown its reasoning so far and asked for the answer in a few tokens; the online rule
  stops once ``probe_k`` consecutive probe answers agree.
* :func:`conclude` (async :func:`aconclude`) asks the model to conclude in a few tokens after the
  kept reasoning, once the stream was stopped.

Two request styles, because providers differ in what they accept after a stopped thinking stream:

* ``"prefill"``: the kept reasoning goes back as the start of the assistant turn, closed with
  ``</think>`` and followed by ``**Final Answer** \\boxed{``, and the model continues it. For
  OpenAI-compatible servers of open reasoning models (vLLM / SGLang serving R1 or QwQ through
  ``ChatOpenAI``: bind ``extra_body={"continue_final_message": True, "add_generation_prompt": False}``)
  and DeepSeek's prefix completion (beta endpoint; the last assistant message carries
  ``"prefix": True``, set here in ``additional_kwargs``).
* ``"ask"`` (default, any chat model): the kept reasoning goes in a user turn, with the request
  to reply with the final answer only. Use it for Anthropic extended thinking (thinking blocks are
  signed, so a cut block cannot be sent back, and prefill is refused while thinking is on: call a
  copy of the model without ``thinking``) and for OpenAI reasoning models (hidden reasoning; use a
  low ``reasoning_effort`` for the conclusion).

Example:
    >>> from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> model = GenericFakeChatModel(messages=iter([AIMessage("540}")]))
    >>> probe = make_answer_probe(model, [HumanMessage("How far?")], style="prefill")
    >>> probe("So 9 * 60 = 540.")
    '540'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from ..errors import InvalidInputError
from ..overthinking.answers import final_answer, normalize_answer
from ..overthinking.online import Probe

if TYPE_CHECKING:
    from typing_extensions import Unpack

ConclusionStyle = Literal["prefill", "ask"]
STYLES: tuple[ConclusionStyle, ...] = ("prefill", "ask")
PREFILL_SUFFIX = "\n</think>\n\n**Final Answer**\n\\boxed{"
ASK_PROMPT = (
    "Here is your reasoning so far:\n\n{reasoning}\n\nStop reasoning now. Reply with the final answer only, "
    "as \\boxed{{...}}."
)


class ConclusionOptions(TypedDict, total=False):
    """Keyword options of :func:`conclude` / :func:`aconclude`: request ``style`` and ``max_tokens``."""

    style: ConclusionStyle
    max_tokens: int


@dataclass(frozen=True)
class Conclusion:
    """The model's conclusion after a stop.

    Attributes:
        text: the reply as given (for ``"prefill"``, what followed ``\\boxed{``).
        answer: the normalised answer read from it (``None`` when none could be read).
        style: the request style used.
    """

    text: str
    answer: str | None
    style: ConclusionStyle


def conclusion_messages(
    messages: Sequence[BaseMessage], kept_reasoning: str, *, style: ConclusionStyle = "ask"
) -> list[BaseMessage]:
    """The request that makes a model conclude after ``kept_reasoning`` (see the module docstring).

    Example:
        >>> msgs = conclusion_messages([HumanMessage("q")], "So 540.", style="prefill")
        >>> msgs[-1].content.endswith("\\\\boxed{"), msgs[-1].additional_kwargs
        (True, {'prefix': True})
    """
    if style not in STYLES:
        raise InvalidInputError(f"style={style!r}; valid: {', '.join(STYLES)}")
    if style == "prefill":
        turn = AIMessage(content=f"<think>\n{kept_reasoning}{PREFILL_SUFFIX}", additional_kwargs={"prefix": True})
        return [*messages, turn]
    return [*messages, HumanMessage(ASK_PROMPT.format(reasoning=kept_reasoning))]


def read_answer(text: str, style: ConclusionStyle) -> str | None:
    """The normalised answer in a conclusion reply (``"prefill"``: the text up to the closing brace)."""
    if style == "prefill":
        return normalize_answer(text.split("}", 1)[0]) if text.strip() else None
    return final_answer(text)


def _bound(model: BaseChatModel, max_tokens: int) -> Any:
    if max_tokens < 1:
        raise InvalidInputError(f"max_tokens={max_tokens!r}; must be >= 1")
    return model.bind(max_tokens=max_tokens)


def conclude(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    kept_reasoning: str,
    *,
    style: ConclusionStyle = "ask",
    max_tokens: int = 32,
) -> Conclusion:
    """Ask ``model`` to conclude after the kept reasoning, in at most ``max_tokens`` tokens."""
    reply = _bound(model, max_tokens).invoke(conclusion_messages(messages, kept_reasoning, style=style))
    return _conclusion(reply, style)


async def aconclude(
    model: BaseChatModel, messages: Sequence[BaseMessage], kept_reasoning: str, **options: Unpack[ConclusionOptions]
) -> Conclusion:
    """Async twin of :func:`conclude` (the same ``style`` and ``max_tokens`` options and defaults)."""
    style = options.get("style", "ask")
    request = conclusion_messages(messages, kept_reasoning, style=style)
    return _conclusion(await _bound(model, options.get("max_tokens", 32)).ainvoke(request), style)


def _conclusion(reply: Any, style: ConclusionStyle) -> Conclusion:
    text = reply.text if isinstance(reply, BaseMessage) else str(reply)
    return Conclusion(text, read_answer(text, style), style)


def make_answer_probe(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    style: ConclusionStyle = "prefill",
    max_tokens: int = 12,
) -> Probe:
    """A probe for the online stop rule: the answer ``model`` gives after the thinking so far.

    Args:
        model: the chat model (the one streaming, or a cheaper one that sees its reasoning).
        messages: the conversation the reasoning answers.
        style: ``"prefill"`` (continue ``\\boxed{``) or ``"ask"``.
        max_tokens: tokens per probe.
    """

    def probe(thinking: str) -> str | None:
        return conclude(model, messages, thinking, style=style, max_tokens=max_tokens).answer

    return probe


def amake_answer_probe(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    style: ConclusionStyle = "prefill",
    max_tokens: int = 12,
) -> Callable[[str], Awaitable[str | None]]:
    """Async twin of :func:`make_answer_probe` (for ``amonitor_stream(..., aprobe=...)``)."""

    async def aprobe(thinking: str) -> str | None:
        return (await aconclude(model, messages, thinking, style=style, max_tokens=max_tokens)).answer

    return aprobe
