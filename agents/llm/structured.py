"""Structured output from the embedded models: a pydantic schema as llama.cpp should get it.

`with_structured_output(Model, method="json_schema")` in langchain-openai hands the pydantic
class to the openai SDK, which sends OpenAI's *strict* form of its JSON schema: every property
in `required`, optional ones only nullable. OpenAI's models write `null` for what a request left
out. llama.cpp turns `response_format` into a grammar (it ignores `strict`) in which every
required key must be written — and a small model then fills them with values: measured with
`agents.quant.spec.StrategySpec` on the 1.5B (bench/local_models.py), an RSI with
`slow_period` and `std_dev`, an invented `short_entry` and stops, 42 s, rejected by the spec's
validators; with the schema as pydantic writes it, the right spec in 15 s.

So on the local route the schema goes as `model_json_schema()` writes it (optional fields
optional; `additionalProperties: false` where the model forbids extras), `strict: false`, and
the reply is validated with the pydantic class: the caller gets the same type as on OpenAI
(with `include_raw` the same `raw` / `parsed` / `parsing_error` dict). The grammar guarantees
JSON of the schema's shape; what the schema cannot say (a pydantic validator) can still fail.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ValidationError


def llama_response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The `json_schema` for llama.cpp: pydantic's own schema, not OpenAI's strict rewrite."""
    return {
        "name": schema.__name__,
        "description": (schema.__doc__ or "").strip(),
        "schema": schema.model_json_schema(),
        "strict": False,
    }


def _validate_raw(schema: type[BaseModel], out: dict[str, Any]) -> dict[str, Any]:
    if out.get("parsing_error") is not None or out.get("parsed") is None:
        return out
    try:
        return {**out, "parsed": schema.model_validate(out["parsed"])}
    except ValidationError as exc:
        return {**out, "parsed": None, "parsing_error": exc}


def local_structured_output(
    base: Any,
    schema: Any,
    *,
    method: str,
    include_raw: bool = False,
    strict: bool | None = None,
    tools: list[Any] | None = None,
    **kwargs: Any,
) -> Runnable[Any, Any] | None:
    """`base.with_structured_output` for a pydantic schema on llama.cpp, or None when the request
    is not one this adapts (another method, a dict schema, tools: langchain-openai's own path).

    `strict` is ignored: llama.cpp's grammar is exact whatever it says.
    """
    if (
        method != "json_schema"
        or tools
        or not (isinstance(schema, type) and is_basemodel_subclass(schema))
    ):
        return None
    chain = base.with_structured_output(
        llama_response_format(schema), method="json_schema", include_raw=include_raw, **kwargs
    )
    model: type[BaseModel] = schema
    if include_raw:
        return chain | RunnableLambda(partial(_validate_raw, model))
    return chain | RunnableLambda(model.model_validate).with_types(output_type=model)
