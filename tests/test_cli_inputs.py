"""Issue 12 failure 11: `corpus index -o` edge cases and a mistyped `--protocol` get a clear
error (exit 2, no traceback), never a misleading one."""

from __future__ import annotations

from corpus_fixtures import make_cremad
from store_fixtures import build_store

from sergrad.cli import main


def test_corpus_index_output_is_a_directory_or_under_a_file(tmp_path, capsys):
    make_cremad(tmp_path / "c")
    base = ["corpus", "index", "--corpus", "crema-d", str(tmp_path / "c"), "-o"]
    (tmp_path / "dir").mkdir()
    assert main([*base, str(tmp_path / "dir")]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err
    (tmp_path / "afile").write_text("x")
    assert main([*base, str(tmp_path / "afile" / "sub" / "u.parquet")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'afile'} is a file, not a folder" in err
    assert (tmp_path / "afile").read_text() == "x"
    assert main([*base, str(tmp_path / "new" / "u.parquet")]) == 0  # a new folder is fine


def test_protocol_typo_is_named_not_blamed_on_where(tmp_path, capsys):
    fx = build_store(tmp_path / "store")
    out = tmp_path / "t.png"
    assert main(["plot", "tradeoff", str(fx.root), "-o", str(out), "--protocol", "per_clent"]) == 2
    err = capsys.readouterr().err
    assert "--protocol 'per_clent' is not in this store; values:" in err and "per_client" in err
    assert "--where" not in err and not out.exists()


def test_one_corrupt_file_is_skipped_and_named_by_every_reader(tmp_path, capsys, caplog):
    """Issue 12 failure 3 for the analysis readers (query, table, report)."""
    import logging

    fx = build_store(tmp_path / "store")
    runs = sorted((fx.root / "runs").rglob("*-mfcc-fedavg-f1-s1.parquet"))
    attacks = sorted((fx.root / "attacks").rglob("*-mfcc-fedavg-f1-s1.parquet"))
    runs[0].write_bytes(b"garbage, not parquet")
    attacks[0].write_bytes(runs[1].read_bytes()[:40])  # truncated
    with caplog.at_level(logging.WARNING, logger="sergrad.store"):
        assert main(["query", str(fx.root), "select count(*) as n from runs"]) == 0
        n_runs = len(list((fx.root / "runs").rglob("*.parquet")))
        assert f"{n_runs - 1}" in capsys.readouterr().out
        assert main(["table", "ser", str(fx.root)]) == 0
        assert main(["report", str(fx.root), "-o", str(tmp_path / "rep")]) == 0
    assert str(runs[0]) in caplog.text and str(attacks[0]) in caplog.text
    assert (tmp_path / "rep" / "index.html").exists()
