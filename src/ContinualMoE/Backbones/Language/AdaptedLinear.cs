using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>y = frozen(x) + delta(x): the one place where language-model layers consult <see cref="ILinearAdapterProvider"/>.</summary>
internal static class AdaptedLinear
{
    public static Tensor AddDelta(Tensor output, Tensor input, int block, string layer, ILinearAdapterProvider? adapters)
    {
        if (adapters?.Delta(new LinearSite(block, layer), input) is not { } delta) return output;
        return output.Plus(delta.dtype == output.dtype ? delta : delta.to(output.dtype));
    }
}
