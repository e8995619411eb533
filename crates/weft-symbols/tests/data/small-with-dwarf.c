static int helper(int x) { return x * 3 + 1; }
__attribute__((noinline)) int work(int x) { int s = 0; for (int i = 0; i < x; i++) s += helper(i); return s; }
int main(int argc, char **argv) { (void)argv; return work(argc) & 1; }
