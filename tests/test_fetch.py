"""fetch-data: every file checked by size and git blob id before anything is written; offline, through file URLs."""
import zipfile

import pytest
from realdata import DATA, real_data

from fedrec.cli import main
from fedrec.data.fetch import SOURCES, Remote, fetch, git_blob
from fedrec.errors import DatasetError


def sources_for(tmp_path, data: bytes, blob: str):
    plain = tmp_path / "u.txt"
    plain.write_bytes(data)
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner/v.txt", data)
    return {"toy": ("toy-folder", "a toy", [Remote("u.txt", plain.as_uri(), len(data), blob),
                                           Remote("v.txt", archive.as_uri(), len(data), blob, "inner/v.txt")])}


def test_checked_files_land_in_the_registry_layout(tmp_path):
    data = b"1\t2\t5\t100\n"
    folder = fetch("toy", tmp_path / "root", sources_for(tmp_path, data, git_blob(data)))
    assert folder == tmp_path / "root" / "toy-folder"
    assert (folder / "u.txt").read_bytes() == data == (folder / "v.txt").read_bytes()


def test_a_file_that_differs_is_refused_and_nothing_is_written(tmp_path):
    data = b"1\t2\t5\t100\n"
    with pytest.raises(DatasetError, match=r"got 10 bytes with git blob [0-9a-f]{40}; expected 10 bytes, blob 0{40}"):
        fetch("toy", tmp_path / "root", sources_for(tmp_path, data, "0" * 40))
    assert not (tmp_path / "root").exists()


def test_git_blob_is_gits_object_id():
    assert git_blob(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `echo hello | git hash-object --stdin`


@real_data
def test_the_recorded_ids_match_the_shared_copies():
    for folder, _, remotes in SOURCES.values():
        for remote in remotes:
            path = DATA / folder / remote.name
            if path.exists():
                assert git_blob(path.read_bytes()) == remote.blob, path


def test_an_unreachable_source_is_one_line_naming_the_url(tmp_path, capsys, monkeypatch):
    import fedrec.data.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "SOURCES", {"toy": ("toy", "", [Remote("x", "http://127.0.0.1:9/x", 1, "0")])})
    assert main(["fetch-data", "toy", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot download http://127.0.0.1:9/x" in err[0]
