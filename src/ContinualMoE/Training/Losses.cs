using static TorchSharp.torch;

namespace ContinualMoE.Training;

public static class Losses
{
    /// <summary>Sets the logits of classes outside <paramref name="mask"/> to -inf, so softmax and argmax ignore them.</summary>
    public static Tensor MaskLogits(Tensor logits, bool[] mask)
    {
        using var excluded = ExcludedClasses(mask, logits.device);
        return MaskLogits(logits, excluded);
    }

    /// <summary>[C] bool, true for the classes outside <paramref name="mask"/>: made once for loops that mask every batch alike.</summary>
    public static Tensor ExcludedClasses(bool[] mask, Device? device = null)
    {
        using var allowed = tensor(mask, device: device);
        return allowed.logical_not();
    }

    /// <summary><see cref="MaskLogits(Tensor, bool[])"/> with the excluded classes already made.</summary>
    public static Tensor MaskLogits(Tensor logits, Tensor excluded) =>
        logits.masked_fill(excluded.device == logits.device ? excluded : excluded.to(logits.device), Scalars.NegativeInfinity);

    /// <summary>Cross-entropy over the classes in <paramref name="mask"/> only (the other logits are masked out,
    /// as L2P-style code does with the current task's classes).</summary>
    public static Tensor MaskedCrossEntropy(Tensor logits, Tensor labels, bool[] mask)
    {
        using var excluded = ExcludedClasses(mask, logits.device);
        return MaskedCrossEntropy(logits, labels, excluded);
    }

    /// <summary><see cref="MaskedCrossEntropy(Tensor, Tensor, bool[])"/> with the excluded classes already made.</summary>
    public static Tensor MaskedCrossEntropy(Tensor logits, Tensor labels, Tensor excluded)
    {
        using var masked = MaskLogits(logits, excluded);
        return nn.functional.cross_entropy(masked, labels);
    }
}
