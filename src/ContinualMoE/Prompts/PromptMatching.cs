using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>
/// Keyed prompt pools (L2P, DualPrompt, Deep L2P++): cosine similarity between the frozen backbone's query feature and
/// learnable keys, top-k selection, optional test-time batch-wise voting, and the key-matching terms the methods' losses
/// are built from.
/// </summary>
public static class PromptMatching
{
    /// <summary>Cosine similarity [B, M] between queries [B, D] and keys [M, D] (the project's one cosine similarity:
    /// prompt keys, MoCL's task keys, NCM's prototypes). Gradients reach the keys (and the queries, which the methods
    /// detach because they come from the frozen backbone).</summary>
    public static Tensor Cosine(Tensor queries, Tensor keys)
    {
        var q = nn.functional.normalize(queries, p: 2, dim: -1);
        var k = nn.functional.normalize(keys, p: 2, dim: -1);
        return q.matmul(k.t());
    }

    /// <summary>
    /// Indices [B, K] of the <paramref name="k"/> most similar keys per sample, among the first
    /// <paramref name="candidates"/> keys (null: all). With <paramref name="batchwise"/> every sample of the batch gets
    /// the batch's K most frequently selected prompts (the public code's test-time voting; inflates accuracy because it
    /// shares information across test samples).
    /// </summary>
    public static Tensor TopK(Tensor similarity, int k, bool batchwise = false, int? candidates = null)
    {
        using var noGrad = no_grad();
        var scores = similarity.detach();
        if (candidates is int n && n < scores.shape[1]) scores = scores.narrow(1, 0, n);
        k = (int)Math.Min(k, scores.shape[1]);
        var selected = scores.topk(k, dim: -1).indexes;               // [B, K]
        return batchwise ? Vote(selected, (int)scores.shape[1], k) : selected;
    }

    /// <summary>Batch-wise majority vote: the K prompts selected most often in the batch (ties: lower index first),
    /// given to every sample. [B, K].</summary>
    public static Tensor Vote(Tensor selected, int poolSize, int k)
    {
        using var noGrad = no_grad();
        var counts = zeros(poolSize, dtype: ScalarType.Float32, device: selected.device)
            .scatter_add_(0, selected.reshape(-1), ones(selected.numel(), dtype: ScalarType.Float32, device: selected.device));
        // Stable tie-break towards lower indices: subtract a tiny index-proportional amount.
        var ranked = counts - Scalars.Arange(poolSize, dtype: ScalarType.Float32, device: selected.device).mul(TieBreak);
        var major = ranked.topk(k).indexes;                           // [K]
        return major.unsqueeze(0).expand(selected.shape[0], k).contiguous();
    }

    /// <summary>The similarities of the selected keys, [B, K] (with gradients to the keys).</summary>
    private static readonly Scalar TieBreak = 1e-4f.ToScalar();

    public static Tensor Selected(Tensor similarity, Tensor selected) => similarity.gather(1, selected);

    /// <summary>Row indices [B, K] that force every sample to use the prompts <paramref name="first"/>..first+K-1
    /// (task-specific prompt masking while training).</summary>
    public static Tensor Forced(long batch, int first, int k, Device device) =>
        Scalars.Arange(first, first + k, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, k).contiguous();
}
