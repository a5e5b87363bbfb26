def make_scaler(k):
    def scale(x):
        return x * k
    return scale
