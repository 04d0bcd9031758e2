using TorchSharp;

namespace ContinualMoE.Data;

/// <summary>
/// One mini-batch: Images [B,3,H,W] float32, Labels [B] int64, and the dataset indices of the samples.
/// The consumer owns the tensors and must dispose the batch (a <c>using</c> in the training loop).
/// </summary>
public sealed record Batch(torch.Tensor Images, torch.Tensor Labels, int[] Indices) : IDisposable
{
    public int Count => Indices.Length;

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
