"""`dockyard fsck` on a terminal: a progress bar while blobs are verified
(on stderr, only when it is a terminal) and a readable report."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dockyard.fsck import Fsck, FsckReport
from dockyard.services import Services


async def run_with_progress(services: Services) -> FsckReport:
    """Run fsck on the services' database and blob storage."""
    checker = Fsck(services.db, services.blobs.storage)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("verifying blobs"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("blobs", total=await checker.total_bytes())
        return await checker.run(lambda count: progress.advance(task, count))


def print_report(report: FsckReport) -> None:
    console = Console()
    console.print(
        f"checked {report.blobs_checked} blobs ({report.bytes_checked} bytes "
        f"verified), {report.manifests_checked} manifests, "
        f"{report.stored_blobs} stored blobs"
    )
    if report.ok:
        console.print("no problems found")
        return
    for problem in report.problems:
        where = f" in {problem.repository}" if problem.repository else ""
        console.print(
            f"[bold red]{problem.kind}[/] {problem.digest}{where}: {problem.detail}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"{len(report.problems)} problem(s) found")
