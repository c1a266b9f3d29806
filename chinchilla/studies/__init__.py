"""Studies beyond one preset's reproduction, each training sweeps and comparing them: learning-rate schedules
(``schedules``), data sets (``datasets``, the paper's Table A2) and the Chinchilla and Kaplan allocations trained
head to head (``headtohead``)."""
