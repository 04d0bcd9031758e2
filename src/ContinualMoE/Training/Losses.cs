using static TorchSharp.torch;

namespace ContinualMoE.Training;

public static class Losses
{
    /// <summary>Sets the logits of classes outside <paramref name="mask"/> to -inf, so softmax and argmax ignore them.</summary>
    public static Tensor MaskLogits(Tensor logits, bool[] mask)
    {
        using var allowed = tensor(mask, device: logits.device);
        return logits.masked_fill(allowed.logical_not(), Scalars.NegativeInfinity);
    }

    /// <summary>Cross-entropy over the classes in <paramref name="mask"/> only (the other logits are masked out,
    /// as L2P-style code does with the current task's classes).</summary>
    public static Tensor MaskedCrossEntropy(Tensor logits, Tensor labels, bool[] mask)
    {
        using var masked = MaskLogits(logits, mask);
        return nn.functional.cross_entropy(masked, labels);
    }
}
