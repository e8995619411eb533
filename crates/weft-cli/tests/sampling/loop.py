# A CPU-bound Python loop (the interpreter's own C functions at work), for
# comparing weft's profile of python3 with perf's.
def f(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


d = {}
for k in range(40):
    d[k] = f(200000)
print(len(d))
