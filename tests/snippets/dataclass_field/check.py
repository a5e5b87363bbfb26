def capture(m):
    return {"cls": m.Config}


def verify(m, refs):
    assert m.Config is refs["cls"]
    assert refs["cls"]().port == 8080
