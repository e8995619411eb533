/* Syscalls whose arguments strace decodes, for the argument capture test:
 * paths with a space, UTF-8, a newline, quotes and control bytes; data
 * written (text, binary, longer than the string limit); a unix socket
 * connected; then an exec with argv (argv[1] = "again" stops there).
 * Usage: args DIR */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 2) {
        /* The exec'd image: one write so that its data shows too. */
        write(1, "after exec\n", 11);
        return 0;
    }
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const char *names[] = {"plain", "with space", "caf\xc3\xa9-\xe2\x9c\x93", "new\nline", "q\"uote\\back\tslash\x01\x7f" "7"};
    char path[512];
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            write(fd, names[i], strlen(names[i]));
            close(fd);
        }
        /* And one that does not exist. */
        snprintf(path, sizeof path, "%s/missing-%u", dir, i);
        open(path, O_RDONLY);
    }
    char bin[300];
    for (unsigned i = 0; i < sizeof bin; i++)
        bin[i] = (char)(i * 7);
    write(1, bin, sizeof bin);
    write(1, "text line\n", 10);

    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/no-such.sock", dir);
    connect(s, (struct sockaddr *)&a, sizeof a);
    close(s);

    /* A datagram through a socket pair, with sendmsg and recvmsg. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0) {
        char out[] = "msg \"data\"\n", in[64];
        struct iovec oi = {.iov_base = out, .iov_len = strlen(out)};
        struct msghdr om = {.msg_iov = &oi, .msg_iovlen = 1};
        sendmsg(sv[0], &om, 0);
        struct iovec ii = {.iov_base = in, .iov_len = sizeof in};
        struct msghdr im = {.msg_iov = &ii, .msg_iovlen = 1};
        recvmsg(sv[1], &im, 0);
    }

    char *const next[] = {argv[0], (char *)dir, "again", "arg with space", "\xc3\xa9", NULL};
    execv(argv[0], next);
    return 1;
}
