"""``recipe=auto``: trials over the passes' options, screened, and the finalists measured together."""
