"""Runs a killed process left RUNNING. MLflow ends a run only when its owner says so, so a run killed while
logging (``kill -9``, a lost machine) stays RUNNING forever. Every run is tagged with its owner's host and pid
(``owner_tags``); a later run logging to the same experiment ends as KILLED those whose owner was on this host and
is gone (``end_orphans``). Another host's runs, and runs of a live owner, are left alone. No mlflow import here:
the client is handed in."""

import os
from typing import Dict, List

from optimizer.host import host_name, owner_gone

HOST, PID = "owner.host", "owner.pid"


def owner_tags() -> Dict[str, str]:
    """The tags that name this process as a run's owner."""
    return {HOST: host_name(), PID: str(os.getpid())}


def end_orphans(client, exp_id: str) -> List[str]:
    """End as KILLED every RUNNING run of experiment ``exp_id`` whose owner was on this host and is gone; one console
    line when there were any. Returns their run ids."""
    query = f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{host_name()}'"
    orphans, token = [], None
    while True:
        page = client.search_runs([exp_id], query, max_results=1000, page_token=token)
        orphans += [r for r in page if owner_gone(r.data.tags.get(HOST), r.data.tags.get(PID))]
        token = page.token
        if not token:
            break
    for run in orphans:
        client.set_terminated(run.info.run_id, "KILLED")
    if orphans:
        from optimizer.console import console

        pids = sorted({r.data.tags[PID] for r in orphans}, key=int)
        console.print(f"tracking: {len(orphans)} run(s) left RUNNING by killed process(es) (pid {', '.join(pids)}) "
                      f"ended as KILLED: {', '.join(r.info.run_id for r in orphans)}", highlight=False, soft_wrap=True)
    return [r.info.run_id for r in orphans]
