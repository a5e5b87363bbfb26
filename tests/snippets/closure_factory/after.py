def make_scaler(k):
    def scale(x):
        return x * k + 1
    return scale
