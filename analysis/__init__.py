"""ecglens.analysis: delineation, intervals, ST measurement and STEMI rules."""
