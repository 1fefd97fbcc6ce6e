/* The batched trainer's fused CPU kernel: one epoch of M small MLPs, V nets at a time.
 *
 * Built on first use by initlab/training/fused.py (the C compiler of the machine, -O3
 * -march=native) and called through ctypes; without a compiler the trainer keeps its torch path.
 *
 * Layout: V nets (one SIMD lane each) are gathered from the StackedMLP flat buffer into a block
 * whose every quantity is a row of V floats (net axis innermost), so every operation is a V-wide
 * vector operation and a whole block (parameters, optimizer state, activations of a minibatch)
 * stays in the L1/L2 cache for all the epoch's steps: forward, loss, backward and the optimizer
 * step run fused per layer, without a pass over main memory. The arithmetic is the torch path's
 * (stacked.py, batched.py, optim.py): the same formulas, to float rounding (sums in another
 * order, exp/log/tanh from the Cephes polynomials below, 1-2 ulp).
 *
 * Nets are independent, so a net's numbers do not depend on V, on the block it falls in, or on
 * how the caller splits the nets between threads.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define V 16

enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_LEAKY = 2, ACT_TANH = 3, ACT_SIGMOID = 4, ACT_ELU = 5, ACT_SELU = 6, ACT_SILU = 7,
       ACT_GELU = 8 };
#define NEEDS_PRE(act) ((act) == ACT_SILU || (act) == ACT_GELU) /* derivative needs z, not only act(z) */
enum { LOSS_BCE = 0, LOSS_MSE = 1, LOSS_CE = 2 }; /* CE: softmax cross-entropy on K > 1 logits */
#define SELU_ALPHA 1.6732632423543772848170429916717f
#define SELU_SCALE 1.0507009873554804934193349852946f
enum { OPT_ADAM = 0, OPT_SGD = 1, OPT_RMSPROP = 2 };

typedef struct {
    int64_t n_layers;       /* L */
    const int64_t *sizes;   /* L + 1 widths */
    int64_t m;              /* nets in the stack (the flat buffer's M) */
    int64_t activation;     /* ACT_* of the hidden layers */
    int64_t loss;           /* LOSS_*: BCE on one logit, or mean squared error on K outputs */
    int64_t has_bias;
    int64_t optimizer;      /* OPT_* */
    float beta1, beta2, eps, momentum, rho, lr; /* lr: SGD / RMSprop (Adam's step sizes: lr_steps) */
    const int64_t *skips;   /* L - 1 flags, or NULL: hidden layer l adds its input, h + act(W h + b) */
} Spec;

#define SKIP(sp, l) ((sp)->skips != NULL && (sp)->skips[l])

/* One row of V floats (a value of V nets), and its integer twin: GCC vector extensions, one SIMD
 * register (or two or four narrower ones) per row. */
typedef float vf __attribute__((vector_size(4 * V)));
typedef int32_t vi __attribute__((vector_size(4 * V)));

static inline vf vsel(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
static inline vf vset(float x) { return (vf){0} + x; }
#define ROWS(ptr) ((vf *)(ptr))

/* ------------------------------------------------------------------ math (vectorized)
 * Cephes single-precision exp, log and tanh (S. L. Moshier, "Methods and Programs for
 * Mathematical Functions", 1989), on rows: 1-2 ulp from the correctly rounded values. */
static inline vf v_exp(vf x) {
    vf xc = vsel(x > 88.7228393f, vset(88.7228393f), x);
    xc = vsel(xc < -103.972084f, vset(-103.972084f), xc);
    vf fx = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* nearest integer */
    vf r = xc - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    vf z = r * r;
    vf y = ((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r
            + 1.6666665459E-1f) * r + 5.0000001201E-1f;
    y = y * z + r + 1.0f;
    vi n = __builtin_convertvector(fx, vi);
    vi n1 = n >> 1, n2 = n - n1; /* 2^n as two factors: no overflow at n = 128, gradual underflow */
    vf out = (y * (vf)((n1 + 127) << 23)) * (vf)((n2 + 127) << 23);
    out = vsel(x > 88.7228393f, vset(INFINITY), out);
    out = vsel(x < -103.972084f, vset(0.0f), out);
    return vsel(x != x, x, out);
}

/* log(x) for positive normal x. */
static inline vf v_log(vf x) {
    vi bits = (vi)x;
    vf e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, vf);
    vf mant = (vf)((bits & (int32_t)0x807fffff) | 0x3f000000); /* in [0.5, 1) */
    vi small = mant < 0.707106781186547524f;
    e = vsel(small, e - 1.0f, e);
    mant = vsel(small, mant + mant - 1.0f, mant - 1.0f);
    vf z = mant * mant;
    vf y = ((((((((7.0376836292E-2f * mant - 1.1514610310E-1f) * mant + 1.1676998740E-1f) * mant
                 - 1.2420140846E-1f) * mant + 1.4249322787E-1f) * mant - 1.6668057665E-1f) * mant
               + 2.0000714765E-1f) * mant - 2.4999993993E-1f) * mant + 3.3333331174E-1f) * mant * z;
    y += e * -2.12194440e-4f;
    y += -0.5f * z;
    return mant + y + e * 0.693359375f;
}

/* log(1 + t) for t in [0, 1], accurate for small t (Goldberg, 1991, Theorem 4). */
static inline vf v_log1p01(vf t) {
    vf u = 1.0f + t;
    vf d = u - 1.0f;
    return vsel(d == 0.0f, t, v_log(u) * (t / d));
}

/* exp(z) - 1, accurate near 0 (Kahan's expm1 from exp and log). */
static inline vf v_expm1(vf z) {
    vf u = v_exp(z);
    vf um1 = u - 1.0f;
    vf mid = um1 * (z / v_log(vsel(u > 1e-30f, u, vset(1.0f))));
    return vsel(u == 1.0f, z, vsel(u < 1e-30f, vset(-1.0f), vsel(z > 0.5f, um1, mid)));
}

static inline vf v_abs(vf x);

/* The standard normal CDF Phi(z) = (1 + erf(z / sqrt 2)) / 2, from erfc(x) = t P(t) exp(-x^2),
 * t = 1 / (1 + p x), x = |z| / sqrt 2 (Abramowitz & Stegun, 1964, 7.1.26: |error of erf| < 1.5e-7;
 * the tail as a product, so Phi(-5) keeps its relative precision). */
static inline vf v_phi(vf z) {
    vf x = v_abs(z) * 0.7071067811865476f;
    vf t = 1.0f / (1.0f + 0.3275911f * x);
    vf poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    vf half_erfc = 0.5f * poly * v_exp(-(x * x));
    return vsel(z < 0.0f, half_erfc, 1.0f - half_erfc);
}

static inline vf v_abs(vf x) { return (vf)((vi)x & 0x7fffffff); }

static inline vf v_tanh(vf x) {
    vf a = v_abs(x);
    vf z = x * x;
    vf small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z
                - 3.33332819422E-1f) * z * x + x;
    vf big = 1.0f - 2.0f / (v_exp(a + a) + 1.0f);
    big = (vf)((vi)big | ((vi)x & (int32_t)0x80000000)); /* the sign of x */
    return vsel(a < 0.625f, small, vsel(x != x, x, big));
}

static inline vf v_sigmoid(vf x) { return 1.0f / (1.0f + v_exp(-x)); }

/* C[p cp + q cq] = sum_k A[p ap + k ak] B[q bq + k bk] for p < P, q < Q: the three products of a
 * layer (forward, weight gradient, input gradient) as one small matrix product per lane, in register
 * tiles of up to 4 x 4 rows (16 accumulators: a load per 2 FMAs instead of 2 per FMA). Each C entry
 * is one sum in k order. The epilogue, fused into the tile's store:
 *   EPI_NONE   C = sum
 *   EPI_BIAS   C = bias[q] + sum                  (a forward layer's pre-activation)
 *   EPI_RELU   C = relu(bias[q] + sum)            (a ReLU layer's output)
 *   EPI_MASK   C = H[p cp + q cq] > 0 ? sum : 0   (the input gradient through a ReLU with outputs H) */
enum { EPI_NONE = 0, EPI_BIAS = 1, EPI_RELU = 2, EPI_MASK = 3 };

static inline vf v_relu(vf z) { return vsel(z < 0.0f, vset(0.0f), z); } /* keeps NaN, as torch.relu */

#define TILE(TP, TQ)                                                                                        \
    static void tile_##TP##_##TQ(vf *C, int64_t cp, int64_t cq, const vf *A, int64_t ap, int64_t ak,          \
                                 const vf *Bm, int64_t bq, int64_t bk, int64_t K, int epi, const vf *bias,    \
                                 const vf *H) {                                                              \
        vf acc[TP][TQ];                                                                                      \
        _Pragma("GCC unroll 4") for (int p = 0; p < TP; p++)                                                 \
            _Pragma("GCC unroll 4") for (int q = 0; q < TQ; q++)                                             \
                acc[p][q] = (epi == EPI_BIAS || epi == EPI_RELU) ? bias[q] : (vf){0};                        \
        for (int64_t k = 0; k < K; k++) {                                                                    \
            vf a[TP], b[TQ];                                                                                 \
            _Pragma("GCC unroll 4") for (int p = 0; p < TP; p++) a[p] = A[p * ap + k * ak];                  \
            _Pragma("GCC unroll 4") for (int q = 0; q < TQ; q++) b[q] = Bm[q * bq + k * bk];                 \
            _Pragma("GCC unroll 4") for (int p = 0; p < TP; p++)                                             \
                _Pragma("GCC unroll 4") for (int q = 0; q < TQ; q++) acc[p][q] += a[p] * b[q];               \
        }                                                                                                    \
        _Pragma("GCC unroll 4") for (int p = 0; p < TP; p++)                                                 \
            _Pragma("GCC unroll 4") for (int q = 0; q < TQ; q++) {                                           \
                vf v = acc[p][q];                                                                            \
                if (epi == EPI_RELU) v = v_relu(v);                                                          \
                if (epi == EPI_MASK) v = vsel(H[p * cp + q * cq] > 0.0f, v, vset(0.0f));                     \
                C[p * cp + q * cq] = v;                                                                      \
            }                                                                                                \
    }
TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4) TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(2, 4)
TILE(3, 1) TILE(3, 2) TILE(3, 3) TILE(3, 4) TILE(4, 1) TILE(4, 2) TILE(4, 3) TILE(4, 4)

typedef void (*tile_fn)(vf *, int64_t, int64_t, const vf *, int64_t, int64_t, const vf *, int64_t, int64_t, int64_t,
                        int, const vf *, const vf *);
static const tile_fn TILES[4][4] = {
    {tile_1_1, tile_1_2, tile_1_3, tile_1_4}, {tile_2_1, tile_2_2, tile_2_3, tile_2_4},
    {tile_3_1, tile_3_2, tile_3_3, tile_3_4}, {tile_4_1, tile_4_2, tile_4_3, tile_4_4}};

static void v_gemm(vf *C, int64_t cp, int64_t cq, const vf *A, int64_t ap, int64_t ak, const vf *Bm, int64_t bq,
                   int64_t bk, int64_t P, int64_t Q, int64_t K, int epi, const vf *bias, const vf *H) {
    for (int64_t p = 0; p < P; p += 4) {
        int64_t tp = P - p < 4 ? P - p : 4;
        for (int64_t q = 0; q < Q; q += 4) {
            int64_t tq = Q - q < 4 ? Q - q : 4;
            TILES[tp - 1][tq - 1](C + p * cp + q * cq, cp, cq, A + p * ap, ap, ak, Bm + q * bq, bq, bk, K, epi,
                                  bias ? bias + q : NULL, H ? H + p * cp + q * cq : NULL);
        }
    }
}

/* sum_k a[k * sa] over k < n, in four partial sums. */
static inline vf v_sum(const vf *a, int64_t sa, int64_t n) {
    vf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k * sa];
        s1 += a[(k + 1) * sa];
        s2 += a[(k + 2) * sa];
        s3 += a[(k + 3) * sa];
    }
    for (; k < n; k++) s0 += a[k * sa];
    return (s0 + s1) + (s2 + s3);
}

/* h = act(z) over n rows in place. */
static void act_forward(int64_t act, vf *z, int64_t n) {
    switch (act) {
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++) z[i] = v_relu(z[i]);
        break;
    case ACT_LEAKY:
        for (int64_t i = 0; i < n; i++) z[i] = vsel(z[i] > 0.0f, z[i], z[i] * 0.01f);
        break;
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++) z[i] = v_tanh(z[i]);
        break;
    case ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) z[i] = v_sigmoid(z[i]);
        break;
    case ACT_ELU: /* z > 0 ? z : alpha (exp(z) - 1), alpha = 1 */
        for (int64_t i = 0; i < n; i++) z[i] = vsel(z[i] > 0.0f, z[i], v_expm1(z[i]));
        break;
    case ACT_SELU: /* scale (z > 0 ? z : alpha (exp(z) - 1)) (Klambauer et al., 2017) */
        for (int64_t i = 0; i < n; i++) z[i] = SELU_SCALE * vsel(z[i] > 0.0f, z[i], SELU_ALPHA * v_expm1(z[i]));
        break;
    case ACT_SILU: /* z sigmoid(z) (Elfwing et al., 2018; Ramachandran et al., 2017) */
        for (int64_t i = 0; i < n; i++) z[i] = z[i] * v_sigmoid(z[i]);
        break;
    case ACT_GELU: /* z Phi(z) (Hendrycks & Gimpel, 2016), the exact form (torch's default) */
        for (int64_t i = 0; i < n; i++) z[i] = z[i] * v_phi(z[i]);
        break;
    default:
        break;
    }
}

/* g <- g * act'(z) over n rows, with act' from the activation's output h (the kernels autograd uses),
 * or from the pre-activation z where the activation needs it (NEEDS_PRE). */
static void act_backward(int64_t act, vf *g, const vf *h, const vf *z, int64_t n) {
    switch (act) {
    case ACT_SILU: /* s (1 + z (1 - s)), s = sigmoid(z) */
        for (int64_t i = 0; i < n; i++) {
            vf sg = v_sigmoid(z[i]);
            g[i] = g[i] * (sg * (1.0f + z[i] * (1.0f - sg)));
        }
        break;
    case ACT_GELU: /* Phi(z) + z phi(z), phi(z) = exp(-z^2 / 2) / sqrt(2 pi) */
        for (int64_t i = 0; i < n; i++)
            g[i] = g[i] * (v_phi(z[i]) + z[i] * (0.3989422804014327f * v_exp(-0.5f * (z[i] * z[i]))));
        break;
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++) g[i] = vsel(h[i] > 0.0f, g[i], vset(0.0f));
        break;
    case ACT_LEAKY:
        for (int64_t i = 0; i < n; i++) g[i] = vsel(h[i] > 0.0f, g[i], g[i] * 0.01f);
        break;
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++) g[i] = g[i] * (1.0f - h[i] * h[i]);
        break;
    case ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) g[i] = g[i] * ((1.0f - h[i]) * h[i]);
        break;
    case ACT_ELU: /* z <= 0: alpha exp(z) = h + alpha */
        for (int64_t i = 0; i < n; i++) g[i] = vsel(h[i] > 0.0f, g[i], g[i] * (h[i] + 1.0f));
        break;
    case ACT_SELU: /* z <= 0: scale alpha exp(z) = h + scale alpha */
        for (int64_t i = 0; i < n; i++) g[i] = vsel(h[i] > 0.0f, g[i] * SELU_SCALE, g[i] * (h[i] + SELU_SCALE * SELU_ALPHA));
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ block storage */
typedef struct {
    int64_t L, B, max_width, n_params;
    int64_t w_off[64], b_off[64], h_off[64]; /* per layer, in floats of a block (x V) */
    float *param, *grad;                      /* n_params x V each */
    float *s1, *s2, *lrs;                     /* the block's rows of the caller's block-layout state, or NULL */
    float *x, *y, *acts, *pre, *aout, *g0, *g1, *g2, *logits; /* input, targets, hidden outputs (and pre-
                                                         * activations, act outputs before a skip), gradients */
} Block;

static int block_init(Block *blk, const Spec *sp, int64_t rows) {
    int64_t L = sp->n_layers, p = 0, h = 0, maxw = 0;
    if (L > 64) return -1;
    for (int64_t l = 0; l < L; l++) {
        int64_t fin = sp->sizes[l], fout = sp->sizes[l + 1];
        blk->w_off[l] = p; p += fout * fin;
        blk->b_off[l] = p; p += fout;
        if (l < L - 1) { blk->h_off[l] = h; h += rows * fout; }
        if (fin > maxw) maxw = fin;
        if (fout > maxw) maxw = fout;
    }
    blk->L = L; blk->B = rows; blk->max_width = maxw; blk->n_params = p;
    size_t pv = (size_t)p * V, bw = (size_t)rows * maxw * V;
    size_t hv = (size_t)(h > 0 ? h : 1) * V, pre = NEEDS_PRE(sp->activation) ? hv : 0;
    size_t aout = sp->skips ? hv : 0;
    size_t total = 2 * pv + (size_t)rows * sp->sizes[0] * V + (size_t)rows * sp->sizes[L] * V + hv + pre + aout
                   + 3 * bw + (size_t)rows * sp->sizes[L] * V;
    float *mem = (float *)aligned_alloc(64, ((total * sizeof(float) + 63) / 64) * 64);
    if (!mem) return -1;
    memset(mem, 0, total * sizeof(float));
    blk->param = mem; mem += pv;
    blk->grad = mem; mem += pv;
    blk->s1 = blk->s2 = blk->lrs = NULL;
    blk->x = mem; mem += (size_t)rows * sp->sizes[0] * V;
    blk->y = mem; mem += (size_t)rows * sp->sizes[L] * V;
    blk->acts = mem; mem += hv;
    blk->pre = pre ? mem : NULL; mem += pre;
    blk->aout = aout ? mem : NULL; mem += aout;
    blk->g0 = mem; mem += bw;
    blk->g1 = mem; mem += bw;
    blk->g2 = mem; mem += bw;
    blk->logits = mem;
    return 0;
}

static void block_free(Block *blk) { free(blk->param); }

/* Copy nets j0 .. j0 + count - 1 (lanes past `count` repeat the last) between the flat buffer (the
 * StackedMLP layout: layer by layer a weight block (M, out, in) then a bias block (M, out)) and the
 * block (parameter k of lane v at row k, lane v). */
static void gather(const Spec *sp, Block *blk, int64_t j0, int64_t count, const float *src, float *dst) {
    int64_t base = 0;
    for (int64_t l = 0; l < blk->L; l++) {
        int64_t per[2] = {sp->sizes[l + 1] * sp->sizes[l], sp->sizes[l + 1]}, off[2] = {blk->w_off[l], blk->b_off[l]};
        for (int part = 0; part < 2; part++) {
            int64_t q = per[part];
            vf *to = ROWS(dst) + off[part];
            const float *from = src + base + j0 * q; /* a (count, q) block, transposed */
            if (count == V) {
                for (int64_t k = 0; k < q; k++)
                    for (int v = 0; v < V; v++) to[k][v] = from[v * q + k];
            } else {
                for (int64_t k = 0; k < q; k++)
                    for (int v = 0; v < V; v++) to[k][v] = from[(v < count ? v : count - 1) * q + k];
            }
            base += sp->m * q;
        }
    }
}

static void scatter(const Spec *sp, Block *blk, int64_t j0, int64_t count, const float *src, float *dst) {
    int64_t base = 0;
    for (int64_t l = 0; l < blk->L; l++) {
        int64_t per[2] = {sp->sizes[l + 1] * sp->sizes[l], sp->sizes[l + 1]}, off[2] = {blk->w_off[l], blk->b_off[l]};
        for (int part = 0; part < 2; part++) {
            int64_t q = per[part];
            const vf *from = ROWS(src) + off[part];
            float *to = dst + base + j0 * q;
            for (int v = 0; v < count; v++)
                for (int64_t k = 0; k < q; k++) to[v * q + k] = from[k][v];
            base += sp->m * q;
        }
    }
}

/* ------------------------------------------------------------------ forward */
/* Logits of rows [0, B) of blk->x into blk->logits (B, K); hidden outputs into blk->acts. */
static void forward(const Spec *sp, Block *blk, int64_t B) {
    const vf *h = ROWS(blk->x);
    for (int64_t l = 0; l < blk->L; l++) {
        int64_t fin = sp->sizes[l], fout = sp->sizes[l + 1];
        const vf *W = ROWS(blk->param) + blk->w_off[l], *bias = ROWS(blk->param) + blk->b_off[l];
        int hidden = l < blk->L - 1;
        vf *z = hidden ? ROWS(blk->acts) + blk->h_off[l] : ROWS(blk->logits);
        /* z[b][o] = bias[o] + sum_i h[b][i] W[o][i], through the activation (ReLU fused into the store) */
        int relu = hidden && sp->activation == ACT_RELU;
        v_gemm(z, fout, 1, h, fin, 1, W, fin, 1, B, fout, fin, relu ? EPI_RELU : EPI_BIAS, bias, NULL);
        if (hidden && blk->pre) memcpy(blk->pre + blk->h_off[l] * V, z, (size_t)(B * fout) * sizeof(vf)); /* z, kept */
        if (hidden && !relu) act_forward(sp->activation, z, B * fout);
        if (hidden && SKIP(sp, l)) { /* h' = h + act(z): act(z) kept for the derivative (fin == fout) */
            vf *a = ROWS(blk->aout) + blk->h_off[l];
            for (int64_t i = 0; i < B * fout; i++) {
                a[i] = z[i];
                z[i] = h[i] + a[i];
            }
        }
        h = z;
    }
}

/* Loss of rows [0, B) added per lane to *loss_sum, correct predictions to *correct; with `grad`,
 * dLoss/dlogits of the minibatch mean into blk->g0 (B, K). */
static void loss_and_grad(const Spec *sp, Block *blk, int64_t B, vf *loss_sum, vf *correct, int grad) {
    int64_t K = sp->sizes[blk->L];
    const vf *x = ROWS(blk->logits), *t = ROWS(blk->y);
    vf *g = ROWS(blk->g0);
    if (sp->loss == LOSS_MSE) {
        float scale = 2.0f / (float)(B * K);
        for (int64_t i = 0; i < B * K; i++) {
            vf d = x[i] - t[i];
            *loss_sum += d * d;
            if (grad) g[i] = d * scale;
        }
        return;
    }
    if (sp->loss == LOSS_CE) { /* softmax cross-entropy; targets are class indices (as floats) */
        for (int64_t b = 0; b < B; b++) {
            const vf *xb = x + b * K;
            vf m = xb[0], arg = vset(0.0f); /* the first largest logit, as torch.argmax */
            for (int64_t k = 1; k < K; k++) {
                vi gt = xb[k] > m;
                m = vsel(gt, xb[k], m);
                arg = vsel(gt, vset((float)k), arg);
            }
            vf sum = {0}, x_t = {0};
            for (int64_t k = 0; k < K; k++) {
                sum += v_exp(xb[k] - m);
                x_t += vsel(t[b] == (float)k, xb[k], vset(0.0f));
            }
            *loss_sum += (m + v_log(sum)) - x_t; /* logsumexp - x_target */
            *correct += vsel(arg == t[b], vset(1.0f), vset(0.0f));
            if (grad) {
                vf r = 1.0f / sum;
                for (int64_t k = 0; k < K; k++)
                    g[b * K + k] = (v_exp(xb[k] - m) * r - vsel(t[b] == (float)k, vset(1.0f), vset(0.0f))) / (float)B;
            }
        }
        return;
    }
    for (int64_t i = 0; i < B; i++) { /* binary cross-entropy from logits: max(x, 0) - x t + log(1 + exp(-|x|)) */
        vf xv = x[i], e = v_exp(-v_abs(xv)); /* exp(-|x|) serves the loss and the sigmoid */
        *loss_sum += (vsel(xv > 0.0f, xv, vset(0.0f)) - xv * t[i]) + v_log1p01(e);
        *correct += vsel((xv > 0.0f) == (t[i] > 0.5f), vset(1.0f), vset(0.0f));
        if (grad) g[i] = (vsel(xv < 0.0f, e, vset(1.0f)) / (1.0f + e) - t[i]) / (float)B; /* sigmoid(x) - t */
    }
}

/* ------------------------------------------------------------------ optimizer */
static void update(const Spec *sp, Block *blk, int64_t first, int64_t count, float lr_t) {
    float *p = blk->param + first * V, *g = blk->grad + first * V;
    float *s1 = blk->s1 ? blk->s1 + first * V : NULL, *s2 = blk->s2 ? blk->s2 + first * V : NULL;
    const float *lrs = blk->lrs ? blk->lrs + first * V : NULL;
    int64_t n = count * V;
    if (sp->optimizer == OPT_ADAM) {
        float b1 = 1.0f - sp->beta1, b2 = sp->beta2, c2 = 1.0f - sp->beta2, eps = sp->eps;
        for (int64_t i = 0; i < n; i++) {
            float m = s1[i] + b1 * (g[i] - s1[i]);
            float v = s2[i] * b2 + (c2 * g[i]) * g[i]; /* as torch's addcmul: no overflow of g^2 first */
            s1[i] = m;
            s2[i] = v;
            p[i] = p[i] - lr_t * (m / (sqrtf(v) + eps));
        }
    } else if (sp->optimizer == OPT_SGD) {
        float mom = sp->momentum, lr = sp->lr;
        if (mom == 0.0f && lrs) {
            for (int64_t i = 0; i < n; i++) p[i] = p[i] - g[i] * lrs[i];
        } else if (mom == 0.0f) {
            for (int64_t i = 0; i < n; i++) p[i] = p[i] - g[i] * lr;
        } else {
            for (int64_t i = 0; i < n; i++) {
                float buf = s1[i] * mom + g[i];
                s1[i] = buf;
                p[i] = p[i] - buf * (lrs ? lrs[i] : lr);
            }
        }
    } else {
        float rho = sp->rho, c = 1.0f - sp->rho, eps = sp->eps, lr = sp->lr, mom = sp->momentum;
        for (int64_t i = 0; i < n; i++) {
            float v = s1[i] * rho + (c * g[i]) * g[i];
            s1[i] = v;
            float step = g[i] / sqrtf(v + eps);
            if (mom > 0.0f) {
                float buf = s2[i] * mom + lr * step;
                s2[i] = buf;
                p[i] = p[i] - buf;
            } else {
                p[i] = p[i] - lr * step;
            }
        }
    }
}

/* ------------------------------------------------------------------ backward + step */
static void backward_step(const Spec *sp, Block *blk, int64_t B, float lr_t) {
    vf *bufs[3] = {ROWS(blk->g0), ROWS(blk->g1), ROWS(blk->g2)};
    vf *g = bufs[0], *carry = NULL; /* carry: dL/dh of a layer's output that adds its input, passed down as is */
    for (int64_t l = blk->L - 1; l >= 0; l--) {
        int64_t fin = sp->sizes[l], fout = sp->sizes[l + 1];
        const vf *hin = l == 0 ? ROWS(blk->x) : ROWS(blk->acts) + blk->h_off[l - 1];
        const vf *W = ROWS(blk->param) + blk->w_off[l];
        vf *dW = ROWS(blk->grad) + blk->w_off[l], *db = ROWS(blk->grad) + blk->b_off[l];
        v_gemm(dW, fin, 1, g, 1, fout, hin, 1, fin, fout, fin, B, EPI_NONE, NULL, NULL); /* dW[o][i] = sum_b g[b][o] h[b][i] */
        for (int64_t o = 0; o < fout; o++) db[o] = sp->has_bias ? v_sum(g + o, fout, B) : vset(0.0f);
        vf *next = g;
        if (l > 0) { /* gradient wrt the layer's input, through the previous activation */
            vf *dh = bufs[0] == g || bufs[0] == carry ? (bufs[1] == g || bufs[1] == carry ? bufs[2] : bufs[1]) : bufs[0];
            int skip = SKIP(sp, l - 1), plain_relu = sp->activation == ACT_RELU && !skip && carry == NULL;
            /* dh[b][i] = sum_o g[b][o] W[o][i], through the activation's derivative (ReLU's fused when nothing is added) */
            v_gemm(dh, fin, 1, g, fout, 1, W, 1, fin, B, fin, fout, plain_relu ? EPI_MASK : EPI_NONE, NULL,
                   plain_relu ? hin : NULL);
            if (carry != NULL) /* this layer's output was h + act(...): dL/dh gains dL/dh' itself */
                for (int64_t i = 0; i < B * fin; i++) dh[i] += carry[i];
            const vf *a = skip ? ROWS(blk->aout) + blk->h_off[l - 1] : hin; /* act(z) of the layer below */
            const vf *z = blk->pre ? ROWS(blk->pre) + blk->h_off[l - 1] : NULL;
            if (skip) { /* dh passes down as is (the skip); the layer below gets dh * act'(z) */
                next = bufs[0] != g && bufs[0] != dh ? bufs[0] : (bufs[1] != g && bufs[1] != dh ? bufs[1] : bufs[2]);
                memcpy(next, dh, (size_t)(B * fin) * sizeof(vf));
                if (sp->activation == ACT_RELU)
                    for (int64_t i = 0; i < B * fin; i++) next[i] = vsel(a[i] > 0.0f, next[i], vset(0.0f));
                else
                    act_backward(sp->activation, next, a, z, B * fin);
                carry = dh;
            } else {
                if (!plain_relu) {
                    if (sp->activation == ACT_RELU)
                        for (int64_t i = 0; i < B * fin; i++) dh[i] = vsel(a[i] > 0.0f, dh[i], vset(0.0f));
                    else
                        act_backward(sp->activation, dh, a, z, B * fin);
                }
                next = dh;
                carry = NULL;
            }
        }
        /* the layer's step, now that its weights are no longer needed by the backward */
        update(sp, blk, blk->w_off[l], fout * fin, lr_t);
        if (sp->has_bias) update(sp, blk, blk->b_off[l], fout, lr_t);
        g = next;
    }
}

/* Gather rows of the minibatch for every lane: row order perm[group[net] * n + start + b]. */
static void load_rows(const Spec *sp, Block *blk, const float *X, const float *Y, const int64_t *perm,
                      const int64_t *group, int64_t n, const int64_t *nets, int64_t count, int64_t start, int64_t B) {
    int64_t fin = sp->sizes[0], K = sp->loss == LOSS_CE ? 1 : sp->sizes[blk->L]; /* target values per row */
    vf *x = ROWS(blk->x), *y = ROWS(blk->y);
    int shared = 1;
    for (int v = 1; v < V && perm; v++) shared &= group[nets[v < count ? v : count - 1]] == group[nets[0]];
    if (shared) { /* every lane reads the same rows: broadcast */
        const int64_t *order = perm ? perm + group[nets[0]] * n + start : NULL;
        for (int64_t b = 0; b < B; b++) {
            int64_t r = order ? order[b] : start + b;
            for (int64_t i = 0; i < fin; i++) x[b * fin + i] = vset(X[r * fin + i]);
            for (int64_t k = 0; k < K; k++) y[b * K + k] = vset(Y[r * K + k]);
        }
        return;
    }
    for (int v = 0; v < V; v++) {
        const int64_t *order = perm + group[nets[v < count ? v : count - 1]] * n + start;
        for (int64_t b = 0; b < B; b++) {
            int64_t r = order[b];
            for (int64_t i = 0; i < fin; i++) x[b * fin + i][v] = X[r * fin + i];
            for (int64_t k = 0; k < K; k++) y[b * K + k][v] = Y[r * K + k];
        }
    }
}

/* ------------------------------------------------------------------ entry points */
/* One epoch of nets first .. first + count - 1 (first a multiple of V): for every minibatch of `batch`
 * rows in the order perm (G, n) of each net's group, forward, loss, backward and optimizer step.
 * Parameters are read from and written back to the flat buffer; the optimizer state (Adam s1 = m,
 * s2 = v; SGD s1 = momentum buffer; RMSprop s1 = mean square, s2 = momentum buffer) and per-model
 * learning rates lrs (or NULL: sp->lr) stay in the block layout (blocks, n_params, V), updated in
 * place. The epoch's loss and accuracy (the steps' means weighted by their rows, in double, as the
 * torch path sums them) go to epoch_loss / epoch_acc (m,) at the net's index (accuracy NaN for mse).
 * column. Returns 0, or -1 when out of memory. */
int initlab_train_epoch(const Spec *sp, float *flat, float *state1, float *state2, float *lrs,
                        const float *X, const float *Y, const int64_t *perm, const int64_t *group, int64_t n,
                        int64_t batch, int64_t first, int64_t count, const float *lr_steps,
                        double *epoch_loss, double *epoch_acc) {
    Block blk;
    if (first % V != 0 || block_init(&blk, sp, batch < n ? batch : n) != 0) return -1;
    int64_t n_steps = (n + batch - 1) / batch, block_floats = blk.n_params * V;
    int64_t lanes[V];
    for (int64_t a = first; a < first + count; a += V) {
        int64_t c = first + count - a < V ? first + count - a : V;
        for (int v = 0; v < V; v++) lanes[v] = a + (v < c ? v : c - 1);
        gather(sp, &blk, a, c, flat, blk.param);
        blk.s1 = state1 ? state1 + (a / V) * block_floats : NULL;
        blk.s2 = state2 ? state2 + (a / V) * block_floats : NULL;
        blk.lrs = lrs ? lrs + (a / V) * block_floats : NULL;
        double sum_loss[V] = {0}, sum_acc[V] = {0};
        for (int64_t s = 0; s < n_steps; s++) {
            int64_t start = s * batch, B = n - start < batch ? n - start : batch;
            load_rows(sp, &blk, X, Y, perm, group, n, lanes, c, start, B);
            forward(sp, &blk, B);
            vf loss = {0}, correct = {0};
            loss_and_grad(sp, &blk, B, &loss, &correct, 1);
            float scale = 1.0f / (float)(B * (sp->loss == LOSS_MSE ? sp->sizes[blk.L] : 1));
            for (int v = 0; v < V; v++) { /* the step's means (float), weighted by its rows (double) */
                sum_loss[v] += (double)(loss[v] * scale) * (double)B;
                sum_acc[v] += (double)(correct[v] / (float)B) * (double)B;
            }
            backward_step(sp, &blk, B, lr_steps ? lr_steps[s] : sp->lr);
        }
        for (int64_t v = 0; v < c; v++) {
            epoch_loss[a + v] = sum_loss[v] / (double)n;
            epoch_acc[a + v] = sp->loss == LOSS_MSE ? NAN : sum_acc[v] / (double)n;
        }
        scatter(sp, &blk, a, c, blk.param, flat);
    }
    block_free(&blk);
    return 0;
}

/* Mean loss and accuracy of nets first .. first + count - 1 over the n rows of (X, Y), into
 * loss_out / acc_out (m,) at the net's index. Returns 0, or -1 when out of memory. */
int initlab_evaluate(const Spec *sp, const float *flat, const float *X, const float *Y, int64_t n,
                     int64_t first, int64_t count, float *loss_out, float *acc_out) {
    int64_t rows = n < 256 ? n : 256;
    Block blk;
    if (block_init(&blk, sp, rows) != 0) return -1;
    int64_t K = sp->sizes[blk.L], lanes[V];
    for (int64_t a = first; a < first + count; a += V) {
        int64_t c = first + count - a < V ? first + count - a : V;
        for (int v = 0; v < V; v++) lanes[v] = a + (v < c ? v : c - 1);
        gather(sp, &blk, a, c, flat, blk.param);
        vf loss = {0}, correct = {0};
        for (int64_t start = 0; start < n; start += rows) {
            int64_t B = n - start < rows ? n - start : rows;
            load_rows(sp, &blk, X, Y, NULL, NULL, n, lanes, c, start, B);
            forward(sp, &blk, B);
            loss_and_grad(sp, &blk, B, &loss, &correct, 0);
        }
        for (int64_t v = 0; v < c; v++) {
            loss_out[a + v] = loss[v] / (float)(n * (sp->loss == LOSS_MSE ? K : 1));
            acc_out[a + v] = sp->loss == LOSS_MSE ? NAN : correct[v] / (float)n;
        }
    }
    block_free(&blk);
    return 0;
}
