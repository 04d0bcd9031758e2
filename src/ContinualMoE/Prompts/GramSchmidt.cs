using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>CODA-Prompt's initialisation of a task's new prompt components: random normal rows made orthonormal to
/// each other and to all earlier rows (modified Gram-Schmidt on flattened rows).</summary>
public static class GramSchmidt
{
    /// <summary>Overwrites rows [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="rows"/> [M, ...]
    /// (flattened to [M, n]) with unit rows orthogonal to rows [0, end). When the n-dimensional space is exhausted
    /// (more than n rows; only on toy widths) a row keeps its random direction, normalised.</summary>
    public static void InitialiseRows(Tensor rows, int start, int end)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var flat = rows.view(rows.shape[0], -1);   // a view: rows are written in place
        var n = flat.shape[1];
        for (var r = start; r < end; r++)
        {
            var v = randn(n, dtype: flat.dtype, device: flat.device);
            var candidate = v.clone();
            for (var j = 0; j < r; j++)
            {
                var u = flat[j];
                var denominator = u.dot(u).item<float>();
                if (denominator < 1e-8f) continue;
                using var denominatorScalar = denominator.ToScalar();
                candidate = candidate - candidate.dot(u).div(denominatorScalar) * u;
            }
            var norm = candidate.norm().item<float>();
            if (norm < 1e-4f * Math.Sqrt(n)) { candidate = v; norm = v.norm().item<float>(); }
            using var normScalar = norm.ToScalar();
            flat[r].copy_(candidate.div(normScalar));
        }
    }
}
