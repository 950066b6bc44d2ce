"""Push an exported Hub-layout folder to a Hugging Face dataset repo, private by default, and make sure it is.

``push_to_hub(private=True)`` and ``create_repo(private=True, exist_ok=True)`` leave an existing public repo public, so
privacy is checked with ``repo_info`` and fixed with ``update_repo_settings`` *before* any file is uploaded, and checked
again afterwards. Every call has a timeout (CONNECT_TIMEOUT, READ_TIMEOUT); a Hub that refuses, cannot be reached or
does not answer ends in one :class:`HubError` naming the endpoint and what to check. The token comes from the usual login (``hf auth login``) or ``HF_TOKEN``; it is never printed,
logged, put in an error message or written to a file.

The ``covidx-us push`` sub-command is ``processing.cli.push``. This module must not build or export anything: it uploads a folder as is,
except the local files the build and the report leave beside the export (``LOCAL_FILES``: ``build_record.json`` and
``report/``), which hold local paths and are never uploaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from processing.errors import CovidxError
from processing.vocabulary import DEFAULT_OUTPUT

log = logging.getLogger(__name__)

LOCAL_FILES = ("build_record.json", "report/*")  # upload_folder ignore patterns: local to this machine
# Every call to the Hub gives up after these many seconds (huggingface_hub's own client waits for ever): to connect,
# and without a byte received or sent.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_CHECK = "check the network, a proxy (HTTPS_PROXY) and HF_ENDPOINT, then run the push again"


def is_local(relative: str) -> bool:
    """Whether the export-relative path ``relative`` is a local file that is never uploaded."""
    return relative == "build_record.json" or relative.startswith("report/")


class HubError(CovidxError):
    """The push failed: no token, no export folder, a Hub error, or a repo whose privacy cannot be set."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    url: str
    private: bool
    commit_url: str | None
    files: tuple[str, ...]  # paths uploaded, relative to the folder


class _Redact(logging.Filter):
    """Replace a secret in every log record that passes through a handler."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


def _all_handlers() -> list[logging.Handler]:
    """Every handler of every logger: libraries have their own (huggingface_hub prints to stderr by itself)."""
    loggers = [logging.getLogger(), *(item for item in list(logging.root.manager.loggerDict.values())
                                      if isinstance(item, logging.Logger))]
    return list({id(h): h for logger in loggers for h in logger.handlers}.values())


@contextlib.contextmanager
def _redacted_logs(secret: str) -> Iterator[None]:
    handlers = _all_handlers()
    redact = _Redact(secret)
    for handler in handlers:
        handler.addFilter(redact)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redact)


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


@contextlib.contextmanager
def _timeouts() -> Iterator[None]:
    """Give huggingface_hub's shared HTTP client CONNECT_TIMEOUT / READ_TIMEOUT for the duration of a push."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)

    def factory():  # type: ignore[no-untyped-def]
        client = previous()
        client.timeout = type(client.timeout)(READ_TIMEOUT, connect=CONNECT_TIMEOUT)  # the client's Timeout class
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def _transport_failure(exc: BaseException) -> str | None:
    """What went wrong on the way to the Hub (refused, unreachable, timed out), or None for another error."""
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.split(".")[0].startswith("httpx")}
    if "TimeoutException" in names:
        return f"no answer within {CONNECT_TIMEOUT if 'ConnectTimeout' in names else READ_TIMEOUT:g} s"
    if names & {"TransportError", "NetworkError"}:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"cannot connect ({reason or type(exc).__name__})"
    return None


def check_export_folder(folder: Path) -> tuple[str, ...]:
    """The files of an export folder, relative paths sorted; :class:`HubError` if it is not one."""
    if not (folder / "README.md").is_file():
        raise HubError(f"{folder} is not an export folder (no README.md); run `covidx-us build --output {folder}` first")
    files = tuple(sorted(rel for p in folder.rglob("*") if p.is_file()
                         and not is_local(rel := p.relative_to(folder).as_posix())))
    if not any(f.endswith(".parquet") for f in files):
        raise HubError(f"{folder} holds no Parquet shard; run `covidx-us build --output {folder}` first")
    return files


def check_official(folder: Path) -> None:
    """:class:`HubError` unless the card of ``folder`` says it is a build of the official release."""
    from processing.hub.export import CARD_KEY, card_metadata

    try:
        build = card_metadata(folder).get(CARD_KEY)
    except ValueError as exc:  # a YAML header that does not parse
        raise HubError(f"{folder / 'README.md'}: unreadable card header ({exc}); rebuild it or pass --allow-custom") from None
    kind = build.get("release_kind") if isinstance(build, dict) else None
    if kind == "official" and build.get("official") is True:
        return
    what = {"simulated": "a SIMULATED release (covidx-us demo), not COVIDx-US data",
            "custom": "a custom release, not the official COVIDx-US"}.get(str(kind), "an unknown release (its card "
                                                                            "has no covidx-us build record)")
    raise HubError(f"refusing to push {folder}: it was built from {what}; pass --allow-custom to push it anyway")


def push_folder(
    repo_id: str,
    folder: Path | str = DEFAULT_OUTPUT,
    *,
    private: bool = True,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str = "Upload COVIDx-US build (covidx-us push)",
    allow_custom: bool = False,
) -> PushResult:
    """Upload ``folder`` to the dataset repo ``repo_id`` with the wanted visibility (private by default).

    A build that is not of the official release (custom or simulated, as its card says) is refused before any
    network access unless ``allow_custom``.

    ``token`` defaults to the saved login or ``HF_TOKEN``; ``endpoint`` to ``HF_ENDPOINT`` (the real Hub otherwise).
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    folder = Path(folder)
    files = check_export_folder(folder)
    if not allow_custom:
        check_official(folder)
    if repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise HubError(f"invalid repo id {repo_id!r}; expected NAME or NAMESPACE/NAME")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    want = "private" if private else "public"
    with _redacted_logs(token), _timeouts():
        try:
            url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
            if "/" not in repo_id:
                repo_id = f"{api.whoami()['name']}/{repo_id}"
            _ensure_visibility(api, repo_id, private)
            log.info("uploading %d files from %s to %s (%s)", len(files), folder, repo_id, want)
            commit = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message=commit_message,
                ignore_patterns=list(LOCAL_FILES),
            )
            actual = bool(api.repo_info(repo_id, repo_type="dataset", timeout=READ_TIMEOUT).private)
        except OfflineModeIsEnabled:
            raise HubError("cannot push: offline mode is on (unset HF_HUB_OFFLINE)") from None
        except HfHubHTTPError as exc:
            raise HubError(f"push to {repo_id} failed: {_scrub(str(exc), token)}") from None  # the original may carry request details
        except Exception as exc:
            failure = _transport_failure(exc)
            if failure is None:
                raise
            raise HubError(f"push to {repo_id} failed: {_scrub(api.endpoint, token)}: {_scrub(failure, token)}; "
                           f"{_CHECK}") from None
    if actual != private:
        raise HubError(f"{repo_id} is {'private' if actual else 'public'} after the upload; wanted {want}")
    return PushResult(repo_id, url, actual, getattr(commit, "commit_url", None), files)


def _ensure_visibility(api: object, repo_id: str, private: bool) -> None:
    """Make ``repo_id`` private (or public) if it is not; verify; raise :class:`HubError` if the Hub did not follow."""
    info = api.repo_info(repo_id, repo_type="dataset", timeout=READ_TIMEOUT)  # type: ignore[attr-defined]
    if bool(info.private) == private:
        return
    log.warning("%s exists and is %s; making it %s", repo_id, "private" if info.private else "public",
                "private" if private else "public")
    api.update_repo_settings(repo_id, repo_type="dataset", private=private)  # type: ignore[attr-defined]
    if bool(api.repo_info(repo_id, repo_type="dataset", timeout=READ_TIMEOUT).private) != private:  # type: ignore[attr-defined]
        raise HubError(f"{repo_id} could not be made {'private' if private else 'public'}; nothing was uploaded")
