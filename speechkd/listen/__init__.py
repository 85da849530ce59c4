"""Listening tests: static rating pages (MOS, CMOS, AB, ABX, MUSHRA), aggregation of answers, local server."""
