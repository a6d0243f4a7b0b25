"""Request and response bodies of the admin API (pydantic v2, so /openapi.json shows them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from callhook.api.common import (
    DisplayName,
    Domain,
    Model,
    Name,
    Network,
    Number,
    Password,
    Token,
)

Source = Literal["config", "api", "detached"]  # detached: dropped from the file, data kept
Members = Annotated[list[Number], Field(max_length=10_000)]
Groups = Annotated[list[Name], Field(max_length=64)]


ExtendedPrefix = Annotated[
    str,
    Field(
        pattern=r"^([0-9]{1,16})?$",
        description='VoipNow extended numbers: "0003" sends extension 101 as 0003*101; "" none',
    ),
]


# tenants -------------------------------------------------------------------------------
class TenantCreate(Model):
    """A new tenant. Without `ingest_token` the hub makes one; it is in the response."""

    name: Name
    domain: Domain | None = Field(None, description="SIP domain; default NAME.local")
    password: Password | None = Field(None, description="WSI tenant password (stored hashed)")
    ingest_token: Token | None = None
    open_ingest_networks: Annotated[list[Network], Field(max_length=64)] = []
    extended_prefix: ExtendedPrefix = ""


class TenantUpdate(Model):
    """Fields to change; omitted ones stay as they are."""

    domain: Domain | None = None
    password: Password | None = None
    open_ingest_networks: Annotated[list[Network], Field(max_length=64)] | None = None
    extended_prefix: ExtendedPrefix | None = None


class Tenant(BaseModel):
    """A tenant. `source` is `config` for tenants declared in the config file."""

    name: str
    tenant_id: str
    domain: str
    ingest_token: str
    has_password: bool
    open_ingest_networks: list[str]
    extended_prefix: str
    source: Source
    created_at: float
    extensions: int
    queues: int
    trunks: int


class TenantPage(BaseModel):
    tenants: list[Tenant]
    next_cursor: str | None


class IngestToken(BaseModel):
    ingest_token: str


# extensions and groups -----------------------------------------------------------------
class ExtensionCreate(Model):
    """A new extension; `password` is its WSI password, stored as an Argon2 hash."""

    number: Number
    display_name: DisplayName = ""
    password: Password | None = None
    groups: Groups = []


class ExtensionUpdate(Model):
    """Fields to change; omitted ones stay as they are."""

    display_name: DisplayName | None = None
    password: Password | None = None
    groups: Groups | None = None


class Extension(BaseModel):
    """An extension. The password is never returned, only whether one is set."""

    number: str
    extension_id: str
    display_name: str
    has_password: bool
    groups: list[str]
    source: Source


class ExtensionPage(BaseModel):
    extensions: list[Extension]
    next_cursor: str | None


class Group(BaseModel):
    """A group: the extensions whose `groups` name it."""

    name: str
    members: list[str]


class GroupList(BaseModel):
    groups: list[Group]


class GroupMembers(Model):
    """The complete membership of a group (extensions not listed leave it)."""

    members: Members


# queues and trunks ---------------------------------------------------------------------
class QueueCreate(Model):
    number: Number
    members: Members = []
    managers: Members = []


class QueueUpdate(Model):
    members: Members | None = None
    managers: Members | None = None


class Queue(BaseModel):
    number: str
    members: list[str]
    managers: list[str]
    source: Source


class QueuePage(BaseModel):
    queues: list[Queue]
    next_cursor: str | None


class TrunkCreate(Model):
    name: Name


class Trunk(BaseModel):
    name: str
    source: Source


class TrunkPage(BaseModel):
    trunks: list[Trunk]
    next_cursor: str | None


# API keys ------------------------------------------------------------------------------
class ApiKeyCreate(Model):
    name: DisplayName = Field("", description="what the key is for")


class ApiKey(BaseModel):
    """A tenant API key's metadata; the key itself is only in the create response."""

    key_id: str
    tenant: str
    name: str
    created_at: float
    revoked_at: float | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="the key: shown once, stored only as a hash")


class ApiKeyPage(BaseModel):
    api_keys: list[ApiKey]
    next_cursor: str | None


# phone URLs ----------------------------------------------------------------------------
class PhoneUrl(BaseModel):
    """One phone event: its canonical name, the vendor's name, where to paste, what to paste."""

    event: str
    vendor_event: str
    setting: str
    url: str
    too_long: bool = Field(description="longer than the vendor accepts (Yealink: 511)")


class PhoneUrls(BaseModel):
    tenant: str
    vendor: str
    model: str = ""
    host: str
    urls: list[PhoneUrl]
