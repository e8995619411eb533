/* Spins in machine code it generates at run time, and describes it in
 * /tmp/perf-PID.map as a JIT would. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    /* mov rcx, rdi; 1: dec rcx; jnz 1b; ret */
    static const unsigned char code[] = {0x48, 0x89, 0xf9, 0x48, 0xff, 0xc9, 0x75, 0xfb, 0xc3};
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    memcpy(p, code, sizeof code);
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *f = fopen(path, "w");
    fprintf(f, "%lx %zx jit_spin_loop\n", (unsigned long)(uintptr_t)p, sizeof code);
    fclose(f);
    void (*fn)(long) = (void (*)(long))p;
    for (int i = 0; i < 20; i++)
        fn(40000000);
    return 0;
}
