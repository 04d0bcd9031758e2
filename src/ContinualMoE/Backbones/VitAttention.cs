using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones;

/// <summary>How a <see cref="VitAttention"/> computes softmax(q k^T / sqrt(d)) v.</summary>
public enum AttentionKernel
{
    /// <summary>libtorch's fused scaled_dot_product_attention (on CPU a flash-attention kernel: no [N, N] weight matrix
    /// in memory) without a prefix or with a plain key/value prefix; the explicit softmax where a prefix needs its logits
    /// (<see cref="AttentionPrefix.NeedsExplicitLogits"/>: SMoPE's supplied logits, NoRGa's gate). Where the fused kernel
    /// would run on bf16/fp16 CPU tensors, the softmax written out in float32 instead: libtorch 2.10's fused kernel is the
    /// slower one there (<see cref="ComputePrecision.FusedAttentionIsSlower"/>).</summary>
    Auto,
    /// <summary>Always the explicit softmax over materialised logits: the reference the fused kernel is tested and
    /// measured against (<c>bench backbone --attention explicit</c>).</summary>
    Explicit,
}

/// <summary>
/// timm's <c>Attention</c>: fused qkv projection, softmax(q k^T / sqrt(d)) v, output projection; with the
/// prefix hook every method of the project plugs into (see <see cref="AttentionPrefix"/>).
/// </summary>
public sealed class VitAttention : Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int heads;
    private readonly int headDim;

    public VitAttention(long dim, int heads) : base(nameof(VitAttention))
    {
        this.heads = heads;
        headDim = (int)(dim / heads);
        qkv = Linear(dim, dim * 3, hasBias: true);
        proj = Linear(dim, dim, hasBias: true);
        register_module("qkv", qkv);
        register_module("proj", proj);
    }

    /// <summary>Which kernel computes the attention (<see cref="AttentionKernel.Auto"/> unless measuring or testing).</summary>
    public AttentionKernel Kernel { get; set; } = AttentionKernel.Auto;

    public override Tensor forward(Tensor x) => Forward(x, null, -1);

    /// <summary>x: [B, N, D]. With a provider, the provider's prefix for <paramref name="blockIndex"/> joins the attention;
    /// with adapters, each of q, k, v and the output projection gets its own delta (see <see cref="ILinearAdapterProvider"/>).</summary>
    public Tensor Forward(Tensor x, IAttentionPrefixProvider? prefixProvider, int blockIndex, ILinearAdapterProvider? adapters = null)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], tokens = x.shape[1], dim = x.shape[2];
        var fused = qkv.forward(x);
        if (adapters is not null) fused = AddFusedDeltas(fused, x, adapters, blockIndex, dim);
        // [B, N, 3, H, d] -> [3, B, H, N, d]: permute (never reshape) so that samples and heads stay apart.
        var qkvHeads = fused.reshape(batch, tokens, 3, heads, headDim).permute(2, 0, 3, 1, 4);
        var q = qkvHeads[0];
        var k = qkvHeads[1];
        var v = qkvHeads[2];

        var attended = Attend(q, k, v, prefixProvider?.ForBlock(blockIndex, q), Kernel);
        var merged = attended.transpose(1, 2).reshape(batch, tokens, dim);
        var output = proj.forward(merged);
        if (adapters?.Delta(new LinearSite(blockIndex, LinearLayers.Output), merged) is { } outputDelta) output = output.Plus(outputDelta);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>timm fuses q, k and v in one layer; adapters see them as three sites, each delta added to its slice
    /// of the fused output [B, N, 3D] (q first, then k, then v, as timm's reshape to [B, N, 3, H, d] reads them).</summary>
    private static Tensor AddFusedDeltas(Tensor fused, Tensor x, ILinearAdapterProvider adapters, int blockIndex, long dim)
    {
        var dq = adapters.Delta(new LinearSite(blockIndex, LinearLayers.Query), x);
        var dk = adapters.Delta(new LinearSite(blockIndex, LinearLayers.Key), x);
        var dv = adapters.Delta(new LinearSite(blockIndex, LinearLayers.Value), x);
        if (dq is null && dk is null && dv is null) return fused;
        Tensor Slice(Tensor? delta, int part) => delta ?? zeros_like(fused.narrow(-1, part * dim, dim));
        return fused.Plus(torch.cat([Slice(dq, 0), Slice(dk, 1), Slice(dv, 2)], dim: -1));
    }

    /// <summary>softmax over [prefix, token] logits times [prefix, token] values for q, k, v [B, H, N, d] and the block's
    /// prefix, on the kernel <paramref name="kernel"/> selects (see <see cref="AttentionKernel"/>).</summary>
    internal static Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionPrefix? prefix, AttentionKernel kernel)
    {
        if (kernel == AttentionKernel.Explicit || prefix is { NeedsExplicitLogits: true })
            return AttendExplicitly(q, k, v, prefix);
        if (ComputePrecision.FusedAttentionIsSlower(q))
        {
            // libtorch 2.10's fused kernel's backward is slow in bf16 on the CPU (`bench backbone`, 2 threads, session 14:
            // vit_micro_patch4_32 batch 64 forward+backward 1.5-2.1x faster written out, in bf16 or in float32;
            // vit_base_patch16_224 batch 8 level in float32, 1.3x faster in bf16). Written out in float32 (the fused kernel
            // also accumulates in float32) and cast back once: about as fast as in bf16, which rounded the logits before
            // the softmax.
            using var scope = NewDisposeScope();
            var float32Prefix = prefix is null ? null
                : AttentionPrefix.FromKeysAndValues(prefix.Keys!.to(ScalarType.Float32), prefix.Values.to(ScalarType.Float32));
            return AttendExplicitly(q.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32), float32Prefix)
                .to(q.dtype).MoveToOuterDisposeScope();
        }
        if (prefix is null) return functional.scaled_dot_product_attention(q, k, v);
        // Plain prefix tuning is attention over the concatenated keys: the fused kernel does it exactly.
        long batch = q.shape[0];
        var keys = torch.cat([ExpandBatch(prefix.Keys!, batch), k], dim: 2);
        var values = torch.cat([ExpandBatch(prefix.Values, batch), v], dim: 2);
        return functional.scaled_dot_product_attention(q, keys, values);
    }

    /// <summary>One softmax over [prefix logits, token logits] (token logits alone without a prefix); only real tokens
    /// act as queries.</summary>
    private static Tensor AttendExplicitly(Tensor q, Tensor k, Tensor v, AttentionPrefix? prefix)
    {
        long batch = q.shape[0], heads = q.shape[1], tokens = q.shape[2];
        var scale = Scalars.Of(Math.Pow(q.shape[3], -0.5));
        var tokenLogits = torch.matmul(q.mul(scale), k.transpose(-2, -1));                 // [B, H, N, N]
        if (prefix is null) return torch.matmul(tokenLogits.softmax(-1), v);
        var prefixLogits = prefix.Logits is not null
            ? prefix.Logits.expand(batch, heads, tokens, prefix.Length)
            : torch.matmul(q.mul(scale), ExpandBatch(prefix.Keys!, batch).transpose(-2, -1)); // [B, H, N, L]
        if (prefix.LogitTransform is not null) prefixLogits = prefix.LogitTransform(prefixLogits);
        prefix.ObserveLogits?.Invoke(prefixLogits);
        var weights = torch.cat([prefixLogits, tokenLogits], dim: -1).softmax(-1);
        var length = prefix.Length;
        var prefixWeights = weights.narrow(-1, 0, length);
        var tokenWeights = weights.narrow(-1, length, tokens);
        return torch.matmul(prefixWeights, ExpandBatch(prefix.Values, batch)).Plus(torch.matmul(tokenWeights, v));
    }

    private static Tensor ExpandBatch(Tensor t, long batch) =>
        t.shape[0] == batch ? t : t.expand(batch, t.shape[1], t.shape[2], t.shape[3]);
}
