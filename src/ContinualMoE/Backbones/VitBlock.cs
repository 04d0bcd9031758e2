using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones;

/// <summary>timm's <c>Mlp</c>: fc1, exact GELU, fc2.</summary>
public sealed class VitMlp : Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public VitMlp(long dim, long hidden) : base(nameof(VitMlp))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden, dim);
        register_module("fc1", fc1);
        register_module("fc2", fc2);
    }

    public override Tensor forward(Tensor x) => Forward(x, null, -1);

    /// <summary>With adapters, fc1 and fc2 each get the provider's delta for their site.</summary>
    public Tensor Forward(Tensor x, ILinearAdapterProvider? adapters, int blockIndex)
    {
        if (adapters is null)
        {
            using var hidden = functional.gelu(fc1.forward(x));
            return fc2.forward(hidden);
        }
        using var scope = NewDisposeScope();
        var preActivation = fc1.forward(x);
        if (adapters.Delta(new LinearSite(blockIndex, LinearLayers.MlpIn), x) is { } inDelta) preActivation = preActivation.Plus(inDelta);
        var activated = functional.gelu(preActivation);
        var output = fc2.forward(activated);
        if (adapters.Delta(new LinearSite(blockIndex, LinearLayers.MlpOut), activated) is { } outDelta) output = output.Plus(outDelta);
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>timm's pre-norm <c>Block</c>: x + attn(norm1(x)), then x + mlp(norm2(x)).</summary>
public sealed class VitBlock : Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly VitAttention attn;
    private readonly LayerNorm norm2;
    private readonly VitMlp mlp;
    public int Index { get; }
    public VitAttention Attention => attn;

    public VitBlock(int index, VitConfig config) : base(nameof(VitBlock))
    {
        Index = index;
        norm1 = LayerNorm(config.EmbedDim, config.LayerNormEps);
        attn = new VitAttention(config.EmbedDim, config.Heads);
        norm2 = LayerNorm(config.EmbedDim, config.LayerNormEps);
        mlp = new VitMlp(config.EmbedDim, config.MlpHidden);
        register_module("norm1", norm1);
        register_module("attn", attn);
        register_module("norm2", norm2);
        register_module("mlp", mlp);
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    public Tensor Forward(Tensor x, IAttentionPrefixProvider? prefixProvider, ILinearAdapterProvider? adapters = null)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(attn.Forward(norm1.forward(x), prefixProvider, Index, adapters));
        return h.Plus(mlp.Forward(norm2.forward(h), adapters, Index)).MoveToOuterDisposeScope();
    }
}
