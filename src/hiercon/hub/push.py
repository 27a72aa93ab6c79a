"""Publishing a saved model folder to the Hugging Face Hub.

A failed push never touches the folder: :class:`PushError` names the folder and the exact command
that retries the upload.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from hiercon.hub.model_card import build_encoder_card, redact
from hiercon.record import HierconRecord

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload hiercon multi-label classifier"
STAGE1_SUFFIX = "-encoder"


class PushError(RuntimeError):
    """An upload to the Hub failed; the model folder is still on disk and ``retry_command`` retries it."""

    def __init__(self, message: str, folder: Path, repo_id: str, retry_command: str) -> None:
        super().__init__(message)
        self.folder = folder
        self.repo_id = repo_id
        self.retry_command = retry_command


@dataclass(frozen=True)
class PushResult:
    """Where a push went: the classifier repository and, when pushed, the stage-1 encoder repository."""

    repo_url: str
    commit_url: str
    stage1_repo_url: str | None = None
    stage1_commit_url: str | None = None


def retry_command(
    folder: Path, repo_id: str, private: bool, stage1_folder: Path | None, stage1_repo_id: str | None
) -> str:
    """The ``hiercon push`` command line that repeats a push."""
    parts = ["hiercon", "push", str(folder), "--repo-id", repo_id]
    if private:
        parts.append("--private")
    if stage1_folder is not None:
        parts += ["--stage1-dir", str(stage1_folder), "--stage1-repo-id", str(stage1_repo_id)]
    return shlex.join(parts)


def _check_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {folder} is not a folder; save the model there before pushing")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{what} {folder} has no config.json; it is not a saved transformers model")


def _upload(api: HfApi, folder: Path, repo_id: str, private: bool, commit_message: str) -> tuple[str, str]:
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message,
        ignore_patterns=["checkpoint-*/**", "*.pt", "*.pth", "*.bin", "*.pkl", ".git/**"],
    )
    return str(repo_url), str(commit.commit_url)


def _stage1_record(folder: Path) -> dict:
    return dict(HierconRecord.from_folder(folder).stage1)


def _upload_encoder(
    api: HfApi,
    folder: Path,
    repo_id: str,
    classifier_folder: Path,
    classifier_repo_id: str,
    private: bool,
    message: str,
) -> tuple[str, str]:
    urls = _upload(api, folder, repo_id, private, message)
    if (folder / "README.md").is_file():
        return urls
    card = build_encoder_card(repo_id, classifier_repo_id, _stage1_record(classifier_folder))
    commit = api.upload_file(
        path_or_fileobj=str(card).encode("utf-8"),
        path_in_repo="README.md",
        repo_id=repo_id,
        repo_type="model",
        commit_message="Add the stage-1 encoder card",
    )
    return urls[0], str(commit.commit_url)


def push_model_folder(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    include_stage1: str | Path | None = None,
    stage1_repo_id: str | None = None,
) -> PushResult:
    """Create ``repo_id`` on the Hub (if needed) and upload ``folder`` into it in one commit.

    ``include_stage1`` is a saved stage-1 encoder folder to publish as a second, feature-extraction
    repository ``stage1_repo_id`` (default ``<repo_id>-encoder``), with a card of its own when the
    folder has no README.md. ``token`` defaults to the
    logged-in or ``HF_TOKEN`` token; it is never logged. Any failure raises :class:`PushError`,
    leaving the folders untouched and saying how to retry. Pickled weights are never uploaded.
    """
    model_folder = Path(folder).resolve()
    _check_folder(model_folder, "model folder")
    stage1_folder = Path(include_stage1).resolve() if include_stage1 is not None else None
    if stage1_folder is not None:
        _check_folder(stage1_folder, "stage-1 encoder folder")
        stage1_repo_id = stage1_repo_id or repo_id + STAGE1_SUFFIX
    command = retry_command(model_folder, repo_id, private, stage1_folder, stage1_repo_id)
    api = HfApi(token=token)
    try:
        logger.info("pushing %s to the Hub repository %s", model_folder, repo_id)
        repo_url, commit_url = _upload(api, model_folder, repo_id, private, commit_message)
        stage1_urls: tuple[str | None, str | None] = (None, None)
        if stage1_folder is not None and stage1_repo_id is not None:
            logger.info("pushing the stage-1 encoder %s to %s", stage1_folder, stage1_repo_id)
            stage1_urls = _upload_encoder(
                api,
                stage1_folder,
                stage1_repo_id,
                model_folder,
                repo_id,
                private,
                commit_message + " (stage-1 encoder)",
            )
    except Exception as error:
        message = (
            f"pushing {model_folder} to the Hub repository {repo_id!r} failed: "
            f"{type(error).__name__}: {redact(str(error), [token])}\n"
            f"The model folder is unchanged at {model_folder}. Retry with:\n  {command}\n"
            f"or from Python: hiercon.hub.push_model_folder({str(model_folder)!r}, {repo_id!r})"
        )
        logger.error("%s", message)
        raise PushError(message, model_folder, repo_id, command) from None
    return PushResult(repo_url, commit_url, *stage1_urls)
