def capture(m):
    return {"t": m.Temp(21)}


def verify(m, refs):
    assert refs["t"].f == 70
