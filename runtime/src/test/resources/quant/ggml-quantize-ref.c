// Writes ggml-quantize-ref.txt: four rows of 1024 pseudo-random floats (X, as f32 bits) and their blocks from
// llama.cpp's quantize_row_{q8_0,q4_0,q4_K,q6_K}_ref. Built against ggml/src/ggml-quants.c:
//   gcc -O2 -std=gnu11 -I$G/include -I$G/src ggml-quantize-ref.c $G/src/ggml-quants.c -lm -o ref && ./ref > ggml-quantize-ref.txt
// (the same bytes with -ffp-contract=off and with -march=native, checked).
#include <stdlib.h>
#include <stdio.h>
#include <stdint.h>
#include "ggml-quants.h"
#include "ggml-common.h"
// prints hex of blocks for deterministic pseudo-random rows
static uint64_t s = 88172645463325252ull;
static double rnd(){ s ^= s<<13; s^= s>>7; s^= s<<17; return (double)(s>>11)/9007199254740992.0; }
extern float ggml_table_f32_f16[1<<16];
int main(){ for(int i=0;i<65536;i++){ uint16_t b=i; _Float16 h; __builtin_memcpy(&h,&b,2); ggml_table_f32_f16[i]=(float)h; }
  float x[1024]; unsigned char buf[8192];
  for (int t=0;t<4;t++){
    for(int i=0;i<1024;i++){ double u=rnd(); x[i]=(float)((u*2-1)*(t==3? 0.02 : 1.0)*(1+ (i%7))); }
    if(t==2) for(int i=0;i<1024;i+=3) x[i]=0;
    printf("X");
    for(int i=0;i<1024;i++) printf(" %08x", *(uint32_t*)&x[i]);
    printf("\n");
    size_t n;
    quantize_row_q8_0_ref(x,(block_q8_0*)buf,1024); n=34*32; printf("Q8_0"); for(size_t i=0;i<n;i++)printf(" %02x",buf[i]); printf("\n");
    quantize_row_q4_0_ref(x,(block_q4_0*)buf,1024); n=18*32; printf("Q4_0"); for(size_t i=0;i<n;i++)printf(" %02x",buf[i]); printf("\n");
    quantize_row_q4_K_ref(x,(block_q4_K*)buf,1024); n=144*4; printf("Q4_K"); for(size_t i=0;i<n;i++)printf(" %02x",buf[i]); printf("\n");
    quantize_row_q6_K_ref(x,(block_q6_K*)buf,1024); n=210*4; printf("Q6_K"); for(size_t i=0;i<n;i++)printf(" %02x",buf[i]); printf("\n");
  }
}
#include <stddef.h>
#include <stdint.h>
void ggml_abort(const char*f,int l,const char*fmt,...){abort();}
size_t ggml_row_size(int t, long n){abort();}
float ggml_table_f32_f16[1<<16];
const char* ggml_type_name(int t){return "";}
size_t ggml_type_size(int t){abort();}
