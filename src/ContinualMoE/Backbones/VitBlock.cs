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

    public override Tensor forward(Tensor x)
    {
        using var hidden = functional.gelu(fc1.forward(x));
        return fc2.forward(hidden);
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

    public Tensor Forward(Tensor x, IAttentionPrefixProvider? prefixProvider)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.Forward(norm1.forward(x), prefixProvider, Index);
        return (h + mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
