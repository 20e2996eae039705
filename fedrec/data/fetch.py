"""`fedrec fetch-data NAME`: download a known dataset from its public source and check every file.

Each file is checked against its size and git blob id (sha1 of "blob SIZE\\0" + bytes), the ids the data folders'
provenance records were made with, so a copy is byte for byte the one the benchmarks used. Files land in
`ROOT/FOLDER/` (the layout `fedrec.data.registry` reads) only once all are checked, each written atomically.
"""
from __future__ import annotations

import hashlib
import io
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fedrec.errors import DatasetError
from fedrec.results import atomic_write

GROUPLENS = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
LIGHTGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/b067ec05f16a24e0e1efe63cd82385f0c469af20/Data/gowalla"
GCE_GNN = "https://raw.githubusercontent.com/CCIIPLab/GCE-GNN/212575302e42d64b8cf0b9ffe1b71b0db398d5be/datasets"


@dataclass(frozen=True)
class Remote:
    """One file of a dataset: where it comes from (a URL, or a member of a zip at that URL) and what it must be."""

    name: str
    url: str
    size: int
    blob: str                 # git blob id
    member: str | None = None  # the file's path inside a zip archive at `url`


SOURCES: dict[str, tuple[str, str, list[Remote]]] = {  # name -> (folder, citation and terms, files)
    "ml-100k": ("movielens-100k",
                "GroupLens Research (F. M. Harper, J. A. Konstan, ACM TiiS 5(4), 2015); research use, no "
                "redistribution (the archive's README)",
                [Remote("u.data", GROUPLENS, 1_979_173, "16ef21ed827cae1a3f71e89e23cffb5a8f44baae", "ml-100k/u.data"),
                 Remote("u.item", GROUPLENS, 236_344, "91bb56d53fcb5f8bbac079755593b48d34cfc9a7", "ml-100k/u.item"),
                 Remote("u.user", GROUPLENS, 22_628, "53d296f961959ad3a9389a6bbd7e8251aeeb6e17", "ml-100k/u.user"),
                 Remote("README", GROUPLENS, 6_749, "19481e2a1ba7e51f83ef019464168dd21ccb9f4d", "ml-100k/README")]),
    "gowalla": ("gowalla-lightgcn",
                "Gowalla check-ins (Cho et al., KDD 2011) in the NGCF/LightGCN preprocessing (He et al., SIGIR "
                "2020; repository MIT-licensed)",
                [Remote("train.txt", f"{LIGHTGCN}/train.txt", 4_633_414, "a27782bd7a1d4d0744148dc0460ea94da74763f2"),
                 Remote("test.txt", f"{LIGHTGCN}/test.txt", 1_372_559, "9ed5af4b5d21511f33740b4e22e3852f45671800")]),
    "tmall": ("tmall-gcegnn",
              "Tmall (IJCAI-15 competition) in the GCE-GNN preprocessing (Wang et al., SIGIR 2020)",
              [Remote("all_train_seq.txt", f"{GCE_GNN}/Tmall/all_train_seq.txt", 1_763_874,
                      "7d9ca17927bdfc21abcd89dd6a526baf3e36cbf7"),
               Remote("test.txt", f"{GCE_GNN}/Tmall/test.txt", 1_392_889, "0c1f10aa88390c4f7249b0cb97f652cbaccf1e63")]),
    "diginetica": ("diginetica-srgnn",
                   "Diginetica (CIKM Cup 2016) in the SR-GNN preprocessing (Wu et al., AAAI 2019), as shipped by "
                   "GCE-GNN",
                   [Remote("all_train_seq.txt", f"{GCE_GNN}/diginetica/all_train_seq.txt", 4_193_626,
                           "36b70a2d734695c8bf9a90682c9626b3cf129c5f"),
                    Remote("test.txt", f"{GCE_GNN}/diginetica/test.txt", 1_384_823,
                           "fe1c961c48b5fe0d082493d37045393b52b1f114")]),
}


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verified(remote: Remote, data: bytes) -> bytes:
    """`data` if it is the file `remote` names (size and git blob id), else a DatasetError saying what differs."""
    if len(data) != remote.size or git_blob(data) != remote.blob:
        raise DatasetError(f"{remote.url}{'#' + remote.member if remote.member else ''}: got {len(data)} bytes with "
                           f"git blob {git_blob(data)}; expected {remote.size} bytes, blob {remote.blob}")
    return data


def download(url: str, timeout: float = 60.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot download {url} ({getattr(err, 'reason', None) or err}); fetch it by hand into "
                           f"the data folder, or try again where the network allows") from None


def fetch(name: str, root: Path, sources: dict[str, tuple[str, str, list[Remote]]] | None = None) -> Path:
    """Download and check every file of dataset `name` into `root/FOLDER`; returns that folder."""
    sources = SOURCES if sources is None else sources
    if name not in sources:
        raise DatasetError(f"no public source known for {name!r}; fetch-data knows {sorted(sources)}")
    folder, _, remotes = sources[name]
    target = root / folder
    fetched: dict[str, bytes] = {}
    archives: dict[str, bytes] = {}
    for remote in remotes:
        if remote.member is None:
            fetched[remote.name] = verified(remote, download(remote.url))
            continue
        archive = archives.setdefault(remote.url, download(remote.url))
        try:
            data = zipfile.ZipFile(io.BytesIO(archive)).read(remote.member)
        except (zipfile.BadZipFile, KeyError) as err:
            raise DatasetError(f"{remote.url}: not the expected archive ({err})") from None
        fetched[remote.name] = verified(remote, data)
    for file, data in fetched.items():  # only once every file is checked; each replaced whole
        atomic_write(target / file, lambda tmp, data=data: tmp.write_bytes(data))
    return target
