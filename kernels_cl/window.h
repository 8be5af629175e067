// The convolution window the host compiles in with -D: KH x KW taps, strides SH, SW and
// dilations DH, DW, so loops over the taps unroll and stride tests need no division.
// These defaults only let a file build alone (#included; each including file still
// builds alone with clconv's -I option).
#ifndef CLCONV_WINDOW_H
#define CLCONV_WINDOW_H

#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef SH
#define SH 1
#endif
#ifndef SW
#define SW 1
#endif
#ifndef DH
#define DH 1
#endif
#ifndef DW
#define DW 1
#endif

#endif
