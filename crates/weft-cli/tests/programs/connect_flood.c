/* Connects to a Unix socket N times, closing each connection at once, and
 * prints how many connects succeeded: another user's flood of a control
 * socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    int n = atoi(argv[2]), ok = 0;
    for (int i = 0; i < n; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0)
            ok++;
        close(s);
    }
    printf("connected %d of %d\n", ok, n);
    return 0;
}
