"""Parameter definitions and validation with Proxmox's own messages (pve-common JSONSchema.pm).

Every endpoint pvesim serves declares its parameters with `P.*`; the conformance test compares
these declarations with the official schema. Indexed keys are declared as in the schema
(`"net[n]"`) with the number of slots: `P.string(..., slots=32)` accepts net0..net31.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ApiError

MISSING = "property is missing and it is not optional"
NOT_IN_SCHEMA = "property is not defined in schema and the schema does not allow additional properties"

_INT_RE = re.compile(r"^[+-]?\d+$")
_NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class FormatError(ValueError):
    """A value that failed a named format or a property string check."""


@dataclass
class Param:
    type: str  # string | integer | number | boolean | array
    optional: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[str] | None = None
    pattern: str | None = None
    max_length: int | None = None
    min_length: int | None = None
    format: str | None = None  # a named format from FORMATS, or None
    prop: "PropString | None" = None  # property-string sub-schema
    slots: int | None = None  # for "name[n]" keys: how many indexes are valid
    items: "Param | None" = None  # for arrays
    description: str = ""

    def check(self, name: str, raw: Any) -> Any:
        """Return the coerced value or raise FormatError with Proxmox's message."""
        if self.type == "array":
            values = raw if isinstance(raw, list) else [raw]
            item = self.items or Param("string")
            return [item.check(name, v) for v in values]
        if isinstance(raw, list):
            raw = raw[-1] if raw else ""
        if isinstance(raw, bool):  # JSON bodies may carry true/false
            raw = int(raw)
        if self.type == "boolean":
            text = str(raw)
            if text not in ("0", "1"):
                raise FormatError(f"type check ('boolean') failed - got '{text}'")
            return int(text)
        if self.type == "integer":
            text = str(raw)
            if not _INT_RE.match(text):
                raise FormatError(f"type check ('integer') failed - got '{text}'")
            value: Any = int(text)
            self._range(value)
        elif self.type == "number":
            text = str(raw)
            if not _NUM_RE.match(text):
                raise FormatError(f"type check ('number') failed - got '{text}'")
            value = float(text)
            self._range(value)
        else:
            value = str(raw)
            if self.max_length is not None and len(value) > self.max_length:
                raise FormatError(f"value may only be {self.max_length} characters long")
            if self.min_length is not None and len(value) < self.min_length:
                raise FormatError(f"value must have at least {self.min_length} characters")
        if self.enum is not None and str(value) not in self.enum:
            raise FormatError(f"value '{value}' does not have a value in the enumeration '{', '.join(self.enum)}'")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            raise FormatError("value does not match the regex pattern")
        if self.format:
            checker = FORMATS.get(self.format)
            if checker is not None:
                try:
                    checker(str(value))
                except FormatError as exc:
                    raise FormatError(f"invalid format - {exc}") from None
        if self.prop is not None:
            try:
                self.prop.parse(str(value), name)
            except FormatError as exc:
                raise FormatError(f"invalid format - {exc}") from None
        return value

    def _range(self, value):
        if self.minimum is not None and value < self.minimum:
            raise FormatError(f"value must have a minimum value of {_num(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise FormatError(f"value must have a maximum value of {_num(self.maximum)}")


def _num(v):
    return int(v) if float(v).is_integer() else v


@dataclass
class PropString:
    """A Proxmox property string such as `virtio,bridge=vmbr0,firewall=1` (format => {...})."""

    keys: dict[str, Param]
    default_key: str | None = None
    # `virtio=AA:BB:...` means model=virtio,macaddr=AA:BB:...: alias -> (key for name, key for value)
    key_aliases: dict[str, tuple[str, str]] = field(default_factory=dict)

    def parse(self, text: str, name: str = "") -> dict[str, Any]:
        result: dict[str, Any] = {}
        errors: list[str] = []
        for part in _split_props(text):
            if part == "":
                continue
            if "=" in part:
                key, value = part.split("=", 1)
            elif self.default_key:
                key, value = self.default_key, part
            else:
                raise FormatError(f"value without key, but schema does not define a default key")
            if key in self.key_aliases:
                name_key, value_key = self.key_aliases[key]
                result[name_key] = key
                key = value_key
            spec = self.keys.get(key)
            if spec is None:
                errors.append(f"{name}.{key}: {NOT_IN_SCHEMA}" if name else f"{key}: {NOT_IN_SCHEMA}")
                continue
            if key in result and key not in (v for _, v in self.key_aliases.values()):
                errors.append(f"{name}.{key}: duplicate key in comma-separated list property")
                continue
            try:
                if spec.type == "boolean":
                    value = _prop_bool(value)
                result[key] = spec.check(key, value)
            except FormatError as exc:
                errors.append(f"{name}.{key}: {exc}" if name else f"{key}: {exc}")
        for key, spec in self.keys.items():
            if not spec.optional and key not in result:
                errors.append(f"{name}.{key}: {MISSING}" if name else f"{key}: {MISSING}")
        if errors:
            raise FormatError("format error\n" + "\n".join(errors))
        return result


def _prop_bool(value: str) -> str:
    low = value.lower()
    if low in ("1", "on", "yes", "true"):
        return "1"
    if low in ("0", "off", "no", "false"):
        return "0"
    return value


def _split_props(text: str) -> list[str]:
    # Commas inside double quotes do not split (e.g. description="a,b").
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_props(text: str, default_key: str | None = None) -> dict[str, str]:
    """Loose parse of a property string without validation (for reading stored config)."""
    out: dict[str, str] = {}
    for part in _split_props(text or ""):
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
        elif default_key:
            out[default_key] = part
    return out


def join_props(values: dict[str, Any], first: str | None = None) -> str:
    """Build a property string; `first` is written bare (the default key)."""
    parts = []
    if first and first in values:
        parts.append(str(values[first]))
    parts += [f"{k}={v}" for k, v in values.items() if k != first and v is not None]
    return ",".join(parts)


# ---- named formats -----------------------------------------------------------------------

def _re_format(regex: str, message: str) -> Callable[[str], None]:
    compiled = re.compile(regex)

    def check(value: str) -> None:
        if not compiled.fullmatch(value):
            raise FormatError(message.format(value=value))

    return check


def _cidr(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        raise FormatError(f"value does not look like a valid CIDR network") from None


def _ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise FormatError("value does not look like a valid IP address") from None


def _list_of(checker: Callable[[str], None]) -> Callable[[str], None]:
    def check(value: str) -> None:
        for item in re.split(r"[,;\s]+", value.strip()):
            if item:
                checker(item)

    return check


STORAGE_CONTENT = ["images", "rootdir", "iso", "vztmpl", "backup", "snippets", "import", "none"]


def _content(value: str) -> None:
    if value not in STORAGE_CONTENT:
        raise FormatError(f"invalid content type '{value}'")


FORMATS: dict[str, Callable[[str], None]] = {
    "pve-node": _re_format(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", "value does not look like a valid node name"),
    "pve-configid": _re_format(r"[a-z][a-z0-9_-]+", "invalid configuration ID '{value}'"),
    "pve-storage-id": _re_format(r"[a-z][a-z0-9\-_.]*[a-z0-9]", "storage ID '{value}' contains illegal characters"),
    "pve-poolid": _re_format(r"[A-Za-z0-9_][A-Za-z0-9_\-/]*", "pool name '{value}' contains illegal characters"),
    "pve-userid": _re_format(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+", "value '{value}' does not look like a valid user name"),
    "pve-groupid": _re_format(r"[A-Za-z0-9.\-_]+", "invalid group name '{value}'"),
    "pve-roleid": _re_format(r"[A-Za-z0-9.\-_]+", "invalid role name '{value}'"),
    "pve-tokenid": _re_format(r"[A-Za-z][A-Za-z0-9.\-_]+", "invalid token name '{value}'"),
    "pve-realm": _re_format(r"[A-Za-z][A-Za-z0-9.\-_]+", "invalid realm name '{value}'"),
    "dns-name": _re_format(r"(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)*", "value does not look like a valid DNS name"),
    "mac-addr": _re_format(r"[a-fA-F0-9]{2}(:[a-fA-F0-9]{2}){5}", "value does not look like a valid MAC address"),
    "pve-vmid-list": _list_of(_re_format(r"[1-9]\d{2,8}", "value does not look like a valid VM ID")),
    "pve-node-list": _list_of(_re_format(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", "value does not look like a valid node name")),
    "pve-storage-id-list": _list_of(_re_format(r"[a-z][a-z0-9\-_.]*[a-z0-9]", "storage ID '{value}' contains illegal characters")),
    "pve-storage-content-list": _list_of(_content),
    "CIDR": _cidr,
    "cidr": _cidr,
    "IPorCIDR": lambda v: _cidr(v) if "/" in v else _ip(v),
    "ip": _ip,
    "address": _ip,
    "pve-calendar-event": _re_format(r"[\w\s:.,*/\-]+", "unable to parse calendar event '{value}'"),
}


# ---- the P helper: short declarations ------------------------------------------------------

class P:
    @staticmethod
    def string(optional=True, **kw) -> Param:
        return Param("string", optional=optional, **kw)

    @staticmethod
    def integer(optional=True, **kw) -> Param:
        return Param("integer", optional=optional, **kw)

    @staticmethod
    def number(optional=True, **kw) -> Param:
        return Param("number", optional=optional, **kw)

    @staticmethod
    def boolean(optional=True, **kw) -> Param:
        return Param("boolean", optional=optional, **kw)

    @staticmethod
    def enum(values, optional=True, **kw) -> Param:
        return Param("string", optional=optional, enum=list(values), **kw)

    @staticmethod
    def array(items: Param | None = None, optional=True, **kw) -> Param:
        return Param("array", optional=optional, items=items or Param("string"), **kw)

    @staticmethod
    def node(optional=False) -> Param:
        return Param("string", optional=optional, format="pve-node")

    @staticmethod
    def vmid(optional=False) -> Param:
        return Param("integer", optional=optional, minimum=100, maximum=999999999, format="pve-vmid")

    @staticmethod
    def storage(optional=True) -> Param:
        return Param("string", optional=optional, format="pve-storage-id")

    @staticmethod
    def digest() -> Param:
        return Param("string", optional=True, max_length=64)


def validate(defs: dict[str, Param], raw: dict[str, Any]) -> dict[str, Any]:
    """Validate raw request parameters against `defs`; raise 400 with per-field errors."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    indexed = {k[:-3]: (k, d) for k, d in defs.items() if k.endswith("[n]")}
    for name, value in raw.items():
        spec = defs.get(name)
        if spec is None:
            m = re.fullmatch(r"([a-z_\-]+?)(\d+)", name)
            if m and m.group(1) in indexed:
                key, spec = indexed[m.group(1)][0], indexed[m.group(1)][1]
                if spec.slots is not None and int(m.group(2)) >= spec.slots:
                    spec = None
        if spec is None:
            errors[name] = NOT_IN_SCHEMA
            continue
        try:
            values[name] = spec.check(name, value)
        except FormatError as exc:
            errors[name] = str(exc)
    for name, spec in defs.items():
        if not spec.optional and not name.endswith("[n]") and name not in raw:
            errors[name] = MISSING
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors)
    return values
