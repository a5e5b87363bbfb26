def capture(m):
    return {"alias": m.f, "registry": [m.f]}


def verify(m, refs):
    assert refs["alias"](1) == 3
    assert refs["registry"][0](1) == 3
