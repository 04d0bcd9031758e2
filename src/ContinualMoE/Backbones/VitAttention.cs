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
    /// (<see cref="AttentionPrefix.NeedsExplicitLogits"/>: SMoPE's supplied logits, NoRGa's gate).</summary>
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
    private readonly double scale;

    public VitAttention(long dim, int heads) : base(nameof(VitAttention))
    {
        this.heads = heads;
        headDim = (int)(dim / heads);
        scale = Math.Pow(headDim, -0.5);
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

        var prefix = prefixProvider?.ForBlock(blockIndex, q);
        Tensor attended;
        if (Kernel == AttentionKernel.Explicit || prefix is { NeedsExplicitLogits: true })
        {
            attended = AttendExplicitly(q, k, v, prefix, batch, tokens);
        }
        else if (prefix is null)
        {
            attended = functional.scaled_dot_product_attention(q, k, v);
        }
        else
        {
            // Plain prefix tuning is attention over the concatenated keys: the fused kernel does it exactly.
            var keys = torch.cat([ExpandBatch(prefix.Keys!, batch), k], dim: 2);
            var values = torch.cat([ExpandBatch(prefix.Values, batch), v], dim: 2);
            attended = functional.scaled_dot_product_attention(q, keys, values);
        }
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

    /// <summary>One softmax over [prefix logits, token logits] (token logits alone without a prefix); only real tokens
    /// act as queries.</summary>
    private Tensor AttendExplicitly(Tensor q, Tensor k, Tensor v, AttentionPrefix? prefix, long batch, long tokens)
    {
        var tokenLogits = torch.matmul(q.mul(Scalars.Of(scale)), k.transpose(-2, -1));                 // [B, H, N, N]
        if (prefix is null) return torch.matmul(tokenLogits.softmax(-1), v);
        var prefixLogits = prefix.Logits is not null
            ? prefix.Logits.expand(batch, heads, tokens, prefix.Length)
            : torch.matmul(q.mul(Scalars.Of(scale)), ExpandBatch(prefix.Keys!, batch).transpose(-2, -1)); // [B, H, N, L]
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
