"""Errors for bad market data: the message names the file, the row and the problem."""


class DataError(ValueError):
    pass
