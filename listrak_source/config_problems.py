"""Every problem of a configuration, each named by where it came from, in one line.

A value may come from the config file or from a LISTRAK_SOURCE_* variable (which wins), so
each problem names the one a person must edit, and an unknown key the known one closest to
it. Input values are never echoed: they may be secrets.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

ENV_PREFIX = "LISTRAK_SOURCE_"


def describe_validation(
    exc: ValidationError,
    *,
    root: type[BaseModel] | None = None,
    origin: str = "",
    environ: Mapping[str, str] | None = None,
) -> str:
    """Each problem as `where: key: what`, joined in one line; unknown keys first.

    `root` is the model the keys start from (for suggestions); `origin` names the file, and
    a key set by a variable in `environ` is named by that variable instead.
    """
    errors = exc.errors(include_input=False, include_url=False)
    # An unknown key usually explains a "missing" one beside it (a typo), so name it first.
    errors.sort(key=lambda err: err["type"] != "extra_forbidden")
    env = _settings_environment(os.environ if environ is None else environ)
    problems = list(dict.fromkeys(_problem(err, root, origin, env) for err in errors))
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + "; ".join(problems)


def _settings_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Upper-cased name -> name as spelt, for the variables that may carry settings."""
    return {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}


def _problem(
    err: ErrorDetails, root: type[BaseModel] | None, origin: str, env: dict[str, str]
) -> str:
    loc = tuple(err["loc"])
    variable = _variable(loc, env) if err["type"] != "missing" else None
    key = dotted(loc)
    message = _message(err, loc, origin)
    if err["type"] == "extra_forbidden":
        message += _suggestion(loc, root, variable)
    if variable is not None and err["type"] == "list_type":
        # Lists are set whole (JSON), not an entry's key at a time.
        message = f"set the lists whole, as JSON in {env_name(loc)}"
    if variable is not None:
        # Set by the environment: the file is not where it must be fixed.
        return f"{variable}: {key}: {message}"
    where = f"{origin}: " if origin else ""
    return f"{where}{key}: {message}" if key else f"{where}{message}"


def _message(err: ErrorDetails, loc: tuple[Any, ...], origin: str) -> str:
    if err["type"] == "missing":
        file = origin or "the file"
        return f"missing (set it in {file} or as {env_name(loc)})"
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))  # without "Value error, "
    return err["msg"].removeprefix("Value error, ")


def _variable(loc: tuple[Any, ...], env: dict[str, str]) -> str | None:
    """The variable that set this key, or the section or list holding it (set as JSON)."""
    names = [str(part).upper() for part in loc if not isinstance(part, int)]
    for end in range(len(names), 0, -1):
        found = env.get(ENV_PREFIX + "__".join(names[:end]))
        if found is not None:
            return found
    # One set below the key, a piece of it (LISTRAK_SOURCE_LISTS__0__TRAIT).
    below = ENV_PREFIX + "__".join(names) + "__"
    return next((env[name] for name in sorted(env) if name.startswith(below)), None)


def _suggestion(loc: tuple[Any, ...], root: type[BaseModel] | None, variable: str | None) -> str:
    """` (did you mean client_id?)` for the known key closest to an unknown one."""
    model = model_at(root, loc[:-1]) if root is not None else None
    if model is None or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]).lower(), list(model.model_fields), n=1)
    if not close:
        return ""
    keys = [part for part in loc[:-1] if not isinstance(part, int)]
    if variable is not None and variable.upper() == env_name(loc):
        return f" (did you mean {env_name((*keys, close[0]))}?)"
    return f" (did you mean {close[0]}?)"


def model_at(root: type[BaseModel], path: Iterable[Any]) -> type[BaseModel] | None:
    """The model whose fields the key at `path` is one of (list indexes are skipped)."""
    model: type[BaseModel] | None = root
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def closest_section(name: str, sections: Iterable[str]) -> str | None:
    """The section a misspelt variable most likely meant, if any is close."""
    close = difflib.get_close_matches(name.lower(), list(sections), n=1)
    return close[0] if close else None


def dotted(loc: tuple[Any, ...]) -> str:
    """`lists[1].id` from ("lists", 1, "id")."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(str(part))
    return ".".join(parts)


def env_name(loc: tuple[Any, ...]) -> str:
    """The variable that sets the key at `loc`: LISTRAK_SOURCE_SECTION__KEY."""
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc if not isinstance(p, int))
