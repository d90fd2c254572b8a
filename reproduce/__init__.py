"""The paper's studies at small scale (init, PReLU vs ReLU, learned slopes): not part of the
installed model zoo's API; `python training/reproduce.py` runs them."""
