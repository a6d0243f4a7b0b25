"""`CALLHOOK_*` environment overrides, and error messages that name the key, the value
(never a secret) and the variable that set it."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from callhook.config.models import SECTIONS, ConfigError, TenantConfig

ENV_PREFIX = "CALLHOOK_"

# Keys whose values an error message must not repeat (secrets are never logged).
_SECRET_KEYS = frozenset({"admin_key", "password", "secret", "secrets", "ingest_token"})
_USERINFO_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def redact_url(value: Any) -> Any:
    """`postgresql://u:pw@host/db` -> `postgresql://u:***@host/db`; other values as they are."""
    return _USERINFO_PASSWORD.sub(r"\1:***@", value) if isinstance(value, str) else value


def _takes_json(annotation: Any) -> bool:
    """Lists and tables (also `list[...] | None`) are written as JSON in the environment."""
    if get_origin(annotation) is Annotated:
        return _takes_json(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_json(arg) for arg in get_args(annotation) if arg is not type(None))
    return annotation in (list, dict) or get_origin(annotation) in (list, dict)


def _is_table(annotation: Any) -> bool:
    args = get_args(annotation)
    return (
        get_origin(annotation) is list
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
    )


# `CALLHOOK_TENANT_<NAME>_<KEY>`: a declared tenant's own keys, not its tables or its name.
TENANT_ENV_KEYS = tuple(
    key
    for key, info in TenantConfig.model_fields.items()
    if key != "name" and not _is_table(info.annotation)
)


def _is_list(annotation: Any) -> bool:
    """`list[...]` or `list[...] | None`."""
    return get_origin(annotation) is list or any(
        get_origin(a) is list for a in getattr(annotation, "__args__", ())
    )


def _env_value(name: str, raw: str, key: str, model: type[BaseModel]) -> Any:
    if not _takes_json(model.model_fields[key].annotation):
        return raw  # a string, number or boolean: pydantic converts it
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        shown = "" if key in _SECRET_KEYS else f"={redact_url(raw)!r}"
        example = '\'["a", "b"]\'' if _is_list(model.model_fields[key].annotation) else "'{...}'"
        raise ConfigError(
            f"{name}{shown}: not valid JSON ({exc.msg}); this key takes a list or table written"
            f" as JSON, e.g. {name}={example}"
        ) from None


def _env_name(tenant: str) -> str:
    """A tenant name as variable names spell it (`acme-eu.2`: `ACME_EU_2`, any case)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", tenant).lower()


def _tenant_table(doc: dict[str, Any], name: str, rest: str) -> tuple[int, str]:
    """The index of the file's [[tenant]] table that `CALLHOOK_TENANT_<rest>` names, and
    the key."""
    tenants = doc.get("tenant")
    named = [
        (i, t)
        for i, t in enumerate(tenants if isinstance(tenants, list) else [])
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]
    prefixed = [
        (i, t["name"], rest[len(_env_name(t["name"])) + 1 :])
        for i, t in named
        if rest.startswith(_env_name(t["name"]) + "_")
    ]
    found = [(i, key) for i, _, key in prefixed if key in TENANT_ENV_KEYS]
    if len(found) > 1:
        which = " and ".join(repr(tenant) for _, tenant, key in prefixed if key in TENANT_ENV_KEYS)
        raise ConfigError(f"{name}: names tenants {which} alike; rename one")
    if found:
        return found[0]
    if prefixed:
        _, tenant, key = max(prefixed, key=lambda p: len(p[1]))
        raise ConfigError(
            f"{name}: unknown key {key!r} of tenant {tenant!r}"
            f" (expected {', '.join(TENANT_ENV_KEYS)})"
        )
    names = ", ".join(repr(t["name"]) for _, t in named) or "none"
    raise ConfigError(
        f"{name}: no such tenant in the config file (expected CALLHOOK_TENANT_<NAME>_<KEY>"
        f" for a declared tenant; declared: {names})"
    )


def _apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[Any, ...], str]:
    """Write every `CALLHOOK_*` variable into `doc`, a copy of the file's document; return
    which variable set which key (error messages name it)."""
    origin: dict[tuple[Any, ...], str] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "CALLHOOK_CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        model: type[BaseModel]
        loc: tuple[Any, ...]
        if rest.startswith("tenant_"):
            index, key = _tenant_table(doc, name, rest.removeprefix("tenant_"))
            table, model, loc = doc["tenant"][index], TenantConfig, ("tenant", index, key)
        else:
            section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
            if section is None:
                raise ConfigError(
                    f"{name}: unknown setting (expected CALLHOOK_<SECTION>_<KEY>"
                    " or CALLHOOK_TENANT_<NAME>_<KEY>)"
                )
            key, model = rest[len(section) + 1 :], SECTIONS[section]
            if key not in model.model_fields:
                raise ConfigError(f"{name}: unknown key {section}.{key}")
            if not isinstance(doc.get(section), dict):
                doc[section] = {}
            table, loc = doc[section], (section, key)
        table[key] = _env_value(name, raw, key, model)
        origin[loc] = name
    return origin


def _describe(
    exc: ValidationError, data: Mapping[str, Any], origin: Mapping[tuple[Any, ...], str]
) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        value: Any = data
        path: list[str] = []
        for part in loc:
            path.append(f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part))
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                value = None
        where = "".join(path) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            # The key is what is wrong; its value may be a secret under a mistyped name.
            msg, value = "unknown key", None
        shown = ""
        if value is not None and not isinstance(value, dict | list):
            secret = any(isinstance(part, str) and part in _SECRET_KEYS for part in loc)
            shown = " = '***'" if secret else f" = {redact_url(value)!r}"
        by = next((f" (from {v})" for k, v in origin.items() if loc[: len(k)] == k), "")
        lines.append(f"{where}{shown}{_endpoint_named(loc, data)}{by}: {msg}")
    return "; ".join(lines)


_ENDPOINT_TABLES = {"webhook": "webhook", "call_event": "Call Events rule"}


def _endpoint_named(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str:
    """` (tenant 'acme', webhook to https://...)` for an error inside a webhook or rule: an
    index alone does not tell the operator which of several endpoints is wrong."""
    if len(loc) < 5 or loc[0] != "tenant" or loc[2] not in _ENDPOINT_TABLES:
        return ""
    try:
        tenant = data["tenant"][loc[1]]
        table = tenant[loc[2]][loc[3]]
    except (KeyError, IndexError, TypeError):
        return ""
    if not isinstance(tenant, dict) or not isinstance(table, dict):
        return ""
    name, url = tenant.get("name"), table.get("url")
    parts = [f"tenant {name!r}"] if isinstance(name, str) else []
    what = _ENDPOINT_TABLES[loc[2]]
    if loc[2] == "call_event" and isinstance(table.get("extension"), str):
        what += f" of extension {table['extension']!r}"
    parts.append(f"{what} to {redact_url(url)}" if isinstance(url, str) else what)
    return f" ({', '.join(parts)})"
