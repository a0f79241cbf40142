"""Conformance tests: print pvesim's schema coverage in the terminal summary."""

from .schema import SchemaMissing, coverage


def pytest_terminal_summary(terminalreporter):
    try:
        paths, all_paths, pairs, all_pairs = coverage()
    except SchemaMissing as exc:
        terminalreporter.write_line(f"pvesim schema coverage: unavailable ({exc})")
        return
    terminalreporter.write_sep("-", "pvesim coverage of the PVE 9.1 API schema")
    terminalreporter.write_line(f"paths served:        {paths}/{all_paths}")
    terminalreporter.write_line(f"path+method served:  {pairs}/{all_pairs} ({100 * pairs / all_pairs:.1f}%)")
