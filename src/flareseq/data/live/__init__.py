"""Data from today's Sun: SHARP keywords from JSOC, GOES flare lists, forecasting data sets.

- :mod:`.sharp`: the SHARP series, keywords and how JSOC writes their values;
- :mod:`.jsoc`: paged, retried, resumable keyword fetches through SunPy's ``drms`` client;
- :mod:`.flares`: a GOES flare list (SWPC's reports as held by the HEK) as a catalogue file;
- :mod:`.dataset`: fetched keywords + flare list -> labelled 12-hour windows, partitioned in
  time, as a store in the Kaggle/SWAN-SF sample layout.

This package may import only :mod:`flareseq.data` and :mod:`flareseq.errors`.
"""
