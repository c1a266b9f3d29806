"""A sweep directory's analysis: the three approaches fitted to its runs (``report``), the report's text
(``render``) and its figures (``plots``)."""
