"""Query-aware compression of retrieved documents, and a LangChain ``BaseDocumentCompressor``.

:func:`reduce_documents` is ``X' = P(X, E(X))`` twice: across documents (a criterion scores whole
documents against the query; under a total budget the best-scored get their share first, the rest
are dropped) and within each document (the compressor keeps its query-relevant units under the
per-document budget). Every original is archived; its handle is in ``metadata["agent_tokred"]``.

Example:
    >>> from langchain_core.documents import Document
    >>> comp = TokredDocumentCompressor(document_budget=25, criterion="lexical")
    >>> docs = [Document("Lyon is in France. " * 30 + "The Rhone flows through Lyon.")]
    >>> out = comp.compress_documents(docs, query="Which river flows through Lyon?")
    >>> out[0].metadata["agent_tokred"]["tokens_after"] <= 25
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from ..archive import Archive, default_archive
from ..compressor import Compressor
from ..criteria import resolve_criterion
from ..criteria.base import check_scores
from ..errors import InvalidInputError, TokredError
from ..units import Unit
from ._content import MARKER, compress_text, scratch_compressor
from .report import MessageReport, StepReport

DocLike = Document | str


def _doc_text(doc: Any) -> str:
    if isinstance(doc, Document):
        return doc.page_content
    if isinstance(doc, str):
        return doc
    raise InvalidInputError(f"documents must be Document or str, got {type(doc).__name__}")


def _is_reduced(doc: Any) -> bool:
    return isinstance(doc, Document) and isinstance(doc.metadata.get(MARKER), dict)


def _document_scores(criterion: Any, texts: Sequence[str], query: str | None) -> list[float]:
    """Relevance of each whole document to the query (``criterion``; lexical for ``"auto"``)."""
    crit = resolve_criterion("lexical" if criterion == "auto" else criterion)
    units = [Unit(text=t, start=-1, kind="document", index=i) for i, t in enumerate(texts)]
    try:
        return [float(s) for s in check_scores(crit(units, query), len(units), "document criterion")]
    except TokredError:
        return [float(-i) for i in range(len(texts))]  # fall back to the retriever's order


def reduce_documents(
    documents: Sequence[DocLike],
    *,
    query: str | None,
    compressor: Compressor,
    archive: Archive,
    document_budget: int | None = 300,
    total_budget: int | None = None,
    min_tokens: int = 32,
    criterion: Any = "auto",
) -> tuple[list[DocLike], StepReport]:
    """Compress documents to a per-document and a total token budget, keeping their order.

    Args:
        documents: ``Document`` objects or strings (the output has the same types).
        query: the question the documents must still answer.
        compressor: the compression engine (criterion, tokenizer).
        archive: where originals are archived.
        document_budget: most tokens per document (``None``: no per-document limit).
        total_budget: most tokens over all documents; the lowest-scored are cut first, then dropped.
        min_tokens: documents shorter than this are never cut (only dropped under the total budget).
        criterion: how whole documents are ranked for the total budget (``"auto"``: lexical).

    Returns:
        The kept documents (in their input order; dropped ones are omitted, their handles listed in
        the report's ``dropped_handles``) and a :class:`StepReport`.
    """
    started = time.perf_counter()
    texts = [_doc_text(d) for d in documents]
    compressor = scratch_compressor(compressor, archive)
    counter = compressor.counter
    sizes = [counter.count(t) for t in texts]
    targets = [size if document_budget is None or size <= max(document_budget, min_tokens) or _is_reduced(doc)
               else document_budget for doc, size in zip(documents, sizes)]
    wanted = list(targets)
    if total_budget is not None and sum(targets) > total_budget:
        scores = _document_scores(criterion, texts, query) if len(texts) > 1 else [0.0]
        order = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
        left = total_budget
        for i in order:
            targets[i] = min(targets[i], left)
            left -= targets[i]
    out: list[DocLike] = []
    records: list[MessageReport] = []
    for i, (doc, text, size, target) in enumerate(zip(documents, texts, sizes, targets)):
        if target >= size:
            out.append(doc)
            continue
        if target == 0 or (target < wanted[i] and target < min_tokens):  # squeezed out by the total budget
            handle = archive.put(text)
            records.append(MessageReport(index=i, role="document", action="dropped", tokens_before=size,
                                         tokens_after=0, handle=handle))
            continue
        red = compress_text(compressor, text, target, query)
        handle = archive.put(text, output=red.text)
        records.append(MessageReport(index=i, role="document", action="compressed", tokens_before=size,
                                     tokens_after=red.tokens_after, handle=handle, criterion=red.criterion))
        if isinstance(doc, Document):
            mark = {"handle": handle, "tokens_before": size, "tokens_after": red.tokens_after}
            meta = {**doc.metadata, MARKER: mark}
            out.append(Document(page_content=red.text, metadata=meta, id=doc.id))
        else:
            out.append(red.text)
    after = sum(counter.count(_doc_text(d)) for d in out)
    report = StepReport(kind="documents", tokens_before=sum(sizes), tokens_after=after,
                        seconds=time.perf_counter() - started, budget=total_budget,
                        within_budget=total_budget is None or after <= total_budget, messages=tuple(records),
                        query_chars=len(query or ""), tokenizer=counter.name)
    return out, report


class TokredDocumentCompressor(BaseDocumentCompressor):
    """A LangChain document compressor for ``ContextualCompressionRetriever``.

    Attributes:
        document_budget: most tokens per document.
        total_budget: most tokens over all documents of one query (``None``: no total limit).
        min_tokens: documents shorter than this are never cut.
        criterion / strategy / tokenizer: passed to :class:`~agent_tokred.compressor.Compressor`.
        archive: where originals go (default: the process-wide in-memory archive).
        last_report: the :class:`StepReport` of the latest call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    document_budget: int | None = Field(default=300, ge=1)
    total_budget: int | None = Field(default=None, ge=1)
    min_tokens: int = Field(default=32, ge=0)
    criterion: Any = "auto"
    strategy: str = "auto"
    tokenizer: Any = None
    archive: Any = None
    _compressor: Compressor | None = PrivateAttr(default=None)
    _last_report: StepReport | None = PrivateAttr(default=None)

    @property
    def compressor(self) -> Compressor:
        if self._compressor is None:
            self._compressor = Compressor(criterion=self.criterion, strategy=self.strategy,  # type: ignore[arg-type]
                                          tokenizer=self.tokenizer)
        return self._compressor

    @property
    def last_report(self) -> StepReport | None:
        return self._last_report

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Compress ``documents`` for ``query``; see :func:`reduce_documents`."""
        archive = self.archive if self.archive is not None else default_archive()
        out, report = reduce_documents(
            documents, query=query or None, compressor=self.compressor, archive=archive,
            document_budget=self.document_budget, total_budget=self.total_budget, min_tokens=self.min_tokens,
            criterion=self.criterion,
        )
        self._last_report = report
        return [d for d in out if isinstance(d, Document)]

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async twin of :meth:`compress_documents` (runs in a worker thread)."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)
