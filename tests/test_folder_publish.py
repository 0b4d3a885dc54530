"""Folders published by one rename (a generated dataset, the sweep's final test folder, a sweep folder's
claim) reach the disk before the rename: without an fsync of the files inside, a power loss soon after
the rename could leave the published folder with empty or missing files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from robustmm.config import load_study
from robustmm.data.registry import SYNTHETIC_MARKER, create_once
from robustmm.io import rename_folder_synced


class FsyncLog:
    """Every os.fsync as (inode of the file or folder, which watched paths existed at that moment)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[Path, bool]]] = []
        self.watched: list[Path] = []

    def watch(self, path: Path) -> None:
        self.watched.append(path)

    def fsync(self, fd: int) -> None:
        self.calls.append((os.fstat(fd).st_ino, {p: p.exists() for p in self.watched}))

    def inodes_while(self, path: Path, exists: bool) -> set[int]:
        """The inodes synced while ``path`` did (or did not) exist."""
        return {ino for ino, seen in self.calls if seen[path] is exists}


@pytest.fixture()
def synced(monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    log = FsyncLog()
    monkeypatch.setattr(os, "fsync", log.fsync)
    return log


def test_a_renamed_folder_has_every_file_and_folder_synced_first_and_its_parent_after(tmp_path: Path,
                                                                                      synced) -> None:
    source, target = tmp_path / "staging", tmp_path / "published"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "nested" / "b.bin").write_bytes(b"b")
    (tmp_path / "outside.txt").write_text("not part of the folder")
    (source / "link.txt").symlink_to(tmp_path / "outside.txt")
    inode = {name: os.stat(source / name).st_ino for name in ("a.txt", "nested/b.bin", "nested", ".")}
    synced.watch(target)

    rename_folder_synced(source, target)

    before = synced.inodes_while(target, exists=False)
    assert set(inode.values()) <= before  # files and the folders listing them, all before the rename
    assert os.stat(tmp_path / "outside.txt").st_ino not in before  # a link is not followed
    assert synced.inodes_while(target, exists=True) == {os.stat(tmp_path).st_ino}  # the new entry, after
    assert not source.exists() and (target / "nested" / "b.bin").read_bytes() == b"b"
    assert (target / "link.txt").is_symlink()


def test_a_rename_onto_a_non_empty_folder_fails_as_os_rename_does(tmp_path: Path) -> None:
    # the sweep folder's claim tells "another worker got there first" from the errno
    (tmp_path / "staging").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "theirs.txt").write_text("x")
    with pytest.raises(OSError) as err:
        rename_folder_synced(tmp_path / "staging", tmp_path / "taken")
    assert err.value.errno in (errno.EEXIST, errno.ENOTEMPTY) and (tmp_path / "staging").is_dir()


def write_dataset(folder: Path) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "s1.nii").write_bytes(b"volume")
    (folder / "table.csv").write_text("id\ns1\n")
    (folder / SYNTHETIC_MARKER).write_text("{}")


@pytest.mark.parametrize("target_is_empty_folder", [False, True])
def test_a_generated_dataset_is_on_the_disk_before_it_appears(tmp_path: Path, synced,
                                                               target_is_empty_folder: bool) -> None:
    target = tmp_path / "cohort"
    if target_is_empty_folder:  # filled entry by entry, the marker last: the data are synced before it
        target.mkdir()
    marker = target / SYNTHETIC_MARKER
    synced.watch(marker)

    create_once(target, write_dataset)

    generated = {os.stat(target / name).st_ino for name in ("images/s1.nii", "table.csv", "images")}
    assert generated <= synced.inodes_while(marker, exists=False)
    # then the entries: the renamed folder's in its parent, or those moved into the empty folder
    listing = target if target_is_empty_folder else target.parent
    assert os.stat(listing).st_ino in synced.inodes_while(marker, exists=True)
    assert (target / "images" / "s1.nii").read_bytes() == b"volume"


def test_the_final_test_folder_has_its_linked_checkpoints_synced_before_it_appears(tmp_path: Path, synced) -> None:
    from robustmm.tune.final import _link_checkpoints_into

    study = tmp_path / "study.yaml"
    study.write_text("name: s\ndata: {kind: adni, root: somewhere}\nmethods: [{name: dropout_baseline}]\n")
    trial_dir, final_dir = tmp_path / "trials" / "trial-0003", tmp_path / "final" / "trial-0003"
    checkpoint = trial_dir / "checkpoints" / "dropout_baseline" / "dropout_baseline.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    synced.watch(final_dir)

    assert _link_checkpoints_into(trial_dir, final_dir, load_study(study), {"seed": 0}, 3)

    linked = final_dir / "checkpoints" / "dropout_baseline" / "dropout_baseline.pt"
    assert linked.read_bytes() == b"weights" and (final_dir / "config.yaml").is_file()
    assert os.stat(linked).st_ino in synced.inodes_while(final_dir, exists=False)
    assert os.stat(final_dir.parent).st_ino in synced.inodes_while(final_dir, exists=True)
