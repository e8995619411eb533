/* A program that tries to make a root recorder read forever or block when
 * it attaches: /dev/zero mapped executable (a "binary" with no end), and
 * its own binary replaced by a FIFO once it runs (argv[1]: its path).
 * Prints "ready" and waits to be killed. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0 || mmap(NULL, 1 << 20, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED)
        perror("mmap /dev/zero executable");
    if (argc > 1 && (unlink(argv[1]) != 0 || mkfifo(argv[1], 0644) != 0))
        perror("replacing the binary by a FIFO");
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
