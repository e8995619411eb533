/* The cheapest syscall in a loop: the highest syscall rate a tracer must keep up with. */
#include <unistd.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int c,char**v){long n=c>1?atol(v[1]):3000000; struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a); for(long i=0;i<n;i++) syscall(SYS_getppid); clock_gettime(CLOCK_MONOTONIC,&b); double s=(b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)/1e9; fprintf(stderr,"%.0f syscalls/s\n", n/s);}
