using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// Root-mean-square layer norm (Zhang and Sennrich 2019) as transformers' <c>LlamaRMSNorm</c>: normalise in float32,
/// cast back to the input dtype, then scale by the weight.
/// </summary>
public sealed class RmsNorm : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(long width, double eps, ScalarType dtype) : base(nameof(RmsNorm))
    {
        this.eps = eps;
        weight = Parameter(ones(width, dtype: dtype));
        register_parameter("weight", weight);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normalised = x32.mul(x32.pow(Scalars.Of(2)).mean([-1L], keepdim: true).add(Scalars.Of(eps)).rsqrt());
        return weight.mul(normalised.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
