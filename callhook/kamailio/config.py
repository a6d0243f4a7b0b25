"""The Kamailio configuration that reports to the hub: the shipped template, filled in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from callhook.errors import BadRequest

# Debian 12 packages holding the modules the configuration loads (besides `kamailio`).
DEBIAN_PACKAGES = (
    "kamailio",  # tm, dialog, registrar, usrloc, mqueue, rtimer
    "kamailio-extra-modules",  # jansson (Debian ships it here, next to evapi)
    "kamailio-utils-modules",  # http_client
)

_KEY = re.compile(r"^[A-Za-z0-9_.~+/=-]{8,256}$")
_LISTEN = re.compile(r"^(udp|tcp):[0-9A-Za-z.:\[\]-]+:[0-9]{1,5}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class KamailioConfig:
    """What a generated configuration needs to know."""

    tenant: str
    domain: str
    hub: str  # base URL of the hub, e.g. http://10.0.0.5:8080
    key: str  # a tenant API key: the source key of this Kamailio
    listen: str = "udp:0.0.0.0:5060"
    children: int = 4
    report: bool = True  # False: the same proxy without reports (benchmark baseline)
    interval_ms: int = 50  # how often the sender looks for new reports
    batch: int = 100  # reports per POST
    # Reports kept while the hub is unreachable: ~0.5 KiB of Kamailio's shared memory each,
    # so 20,000 fit beside the calls in Debian's default 64 MB (-m / SHM_MEMORY).
    queue_size: int = 20_000
    expiry_check: int = 10  # seconds between usrloc expiry scans
    min_expires: int = 60  # shortest registration accepted, seconds


def render(cfg: KamailioConfig) -> str:
    """The configuration file text; BadRequest naming the first wrong value."""
    _check(cfg)
    text = (resources.files("callhook.kamailio") / "kamailio.cfg").read_text()
    values = {
        "TENANT": cfg.tenant,
        "DOMAIN": cfg.domain,
        "HUB": cfg.hub.rstrip("/"),
        "KEY": cfg.key,
        "LISTEN": cfg.listen,
        "CHILDREN": str(cfg.children),
        "REPORTING": "#!define WITH_CALLHOOK" if cfg.report else "# reports to callhook: off",
        "INTERVAL_US": str(cfg.interval_ms * 1000),
        "BATCH": str(cfg.batch),
        "QUEUE_SIZE": str(cfg.queue_size),
        "EXPIRY_CHECK": str(cfg.expiry_check),
        "MIN_EXPIRES": str(cfg.min_expires),
    }
    values["CONTACT_ROUTES"] = "\n".join(
        _CONTACTS.replace("PROFILE", p) for p in ("before", "after", "exp")
    )
    return re.sub(r"@@([A-Z_]+)@@", lambda m: values[m.group(1)], text)


# $ulc(profile=>...) takes a literal profile name: one route per profile.
_CONTACTS = """route[CALLHOOK_CONTACTS_PROFILE] {
#!ifdef WITH_CALLHOOK
	# $var(list): the contacts of usrloc profile PROFILE, as a JSON array
	$var(list) = '[]';
	$var(i) = 0;
	while ($var(i) < $(ulc(PROFILE=>count))) {
		$var(c) = '{}';
		jansson_set("str", "addr", "$(ulc(PROFILE=>addr)[$var(i)])", "$var(c)");
		jansson_set("int", "expires", "$(ulc(PROFILE=>expires)[$var(i)])", "$var(c)");
		jansson_set("str", "ua", "$(ulc(PROFILE=>user_agent)[$var(i)])", "$var(c)");
		jansson_set("str", "received", "$(ulc(PROFILE=>received)[$var(i)])", "$var(c)");
		jansson_set("str", "instance", "$(ulc(PROFILE=>instance)[$var(i)])", "$var(c)");
		jansson_set("int", "reg_id", "$(ulc(PROFILE=>regid)[$var(i)])", "$var(c)");
		jansson_set("int", "modified", "$(ulc(PROFILE=>modified)[$var(i)])", "$var(c)");
		jansson_append("obj", "", "$var(c)", "$var(list)");
		$var(i) = $var(i) + 1;
	}
#!endif
	return;
}
"""


def _check(cfg: KamailioConfig) -> None:
    if not _NAME.match(cfg.tenant):
        raise BadRequest(f"tenant name {cfg.tenant!r} cannot be used in a URL", field="tenant")
    if not cfg.domain or not re.match(r"^[A-Za-z0-9.-]{1,253}$", cfg.domain):
        raise BadRequest(
            f"tenant {cfg.tenant!r} needs a SIP domain (tenant.domain), got {cfg.domain!r}",
            field="domain",
        )
    url = urlsplit(cfg.hub)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise BadRequest(f"--hub must be http(s)://HOST[:PORT], got {cfg.hub!r}", field="hub")
    if '"' in cfg.hub or " " in cfg.hub:
        raise BadRequest(f"--hub must be a plain URL, got {cfg.hub!r}", field="hub")
    if not _KEY.match(cfg.key):
        raise BadRequest("the API key has characters a key never has", field="key")
    if not _LISTEN.match(cfg.listen):
        raise BadRequest(
            f"--listen must be like udp:0.0.0.0:5060, got {cfg.listen!r}", field="listen"
        )
    for name in ("children", "interval_ms", "batch", "queue_size", "expiry_check", "min_expires"):
        if getattr(cfg, name) < 1:
            raise BadRequest(f"{name} must be at least 1", field=name)
    if cfg.batch > 200:
        raise BadRequest("batch must be at most 200 (Kamailio's string buffer)", field="batch")
