using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// transformers' <c>Conv1D</c> (GPT-2's linear layer): y = x W + b with the weight stored [in, out], the transpose of
/// nn.Linear. Keeping that layout lets checkpoints load without copies.
/// </summary>
public sealed class HfConv1D : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    public HfConv1D(long inFeatures, long outFeatures, ScalarType dtype) : base(nameof(HfConv1D))
    {
        weight = Parameter(empty(inFeatures, outFeatures, dtype: dtype));
        bias = Parameter(zeros(outFeatures, dtype: dtype));
        using (no_grad()) init.normal_(weight, 0, 0.02);
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }

    /// <summary>One fused addmm over the flattened leading dimensions (bias + x W), as transformers' Conv1D does. beta and
    /// alpha go to libtorch as plain floats (no Scalar objects).</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() == 2) return torch.addmm(bias, x, weight, 1, 1);
        var shape = x.shape;
        shape[^1] = weight.shape[1];
        return torch.addmm(bias, x.reshape(-1, x.shape[^1]), weight, 1, 1).view(shape);
    }
}
