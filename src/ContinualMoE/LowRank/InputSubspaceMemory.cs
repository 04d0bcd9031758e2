using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>
/// The memory of the old tasks' input space at each adapted layer input, kept the DualGPM way (Liang &amp; Li, "InfLoRA",
/// CVPR 2024, sec. 3.3 and eq. 10-12, after GPM, Saha et al. 2021, and DualGPM, Liang &amp; Li 2023): per input an
/// orthonormal basis M that spans either the old tasks' input space ("remove": projector onto the old space M M^T) or,
/// once that space fills more than half of the dimensions, its complement ("retain": the old space is I - M M^T).
/// Restated from the official InfLoRA.update_DualGPM (methods/inflora.py); the fixture test compares with it.
/// The basis is kept in float32 buffers of fixed shape [D, D] (the first <see cref="Columns"/> columns in use), so a
/// checkpoint's shapes never change and a resumed run reads back exactly the numbers an uninterrupted run uses;
/// the arithmetic is float64.
/// </summary>
public sealed class InputSubspaceMemory : nn.Module
{
    private readonly ModuleList<StoredBasis> bases;   // per input [D, D], the first columns[g] columns in use
    [TorchSharp.Utils.ComponentName(Name = "columns")]
    private readonly Tensor columns;     // [G]
    [TorchSharp.Utils.ComponentName(Name = "retain")]
    private readonly Tensor retain;      // [G] 1: the basis spans the space left free ("retain"), 0: the old space ("remove")
    [TorchSharp.Utils.ComponentName(Name = "updates")]
    private readonly Tensor updates;     // [1] tasks stored

    public InputSubspaceMemory(IReadOnlyList<long> dimensions) : base(nameof(InputSubspaceMemory))
    {
        bases = new ModuleList<StoredBasis>(dimensions.Select(d => new StoredBasis(d)).ToArray());
        columns = zeros(dimensions.Count);
        retain = zeros(dimensions.Count);
        updates = zeros(1);
        register_module("bases", bases);
        register_buffer("columns", columns);
        register_buffer("retain", retain);
        register_buffer("updates", updates);
    }

    /// <summary>One input's basis as a module of its own, so that <c>Module.to</c> re-binds it (an array field would not be).</summary>
    private sealed class StoredBasis : nn.Module
    {
        [TorchSharp.Utils.ComponentName(Name = "basis")]
        public readonly Tensor Basis;

        public StoredBasis(long dim) : base(nameof(StoredBasis))
        {
            Basis = zeros(dim, dim);
            register_buffer("basis", Basis);
        }
    }

    private Tensor BasisBuffer(int input) => bases[input].Basis;

    public int Inputs => bases.Count;
    public int TasksStored => (int)updates.item<float>();
    public int Columns(int input) => (int)columns[input].item<float>();
    public bool Retains(int input) => retain[input].item<float>() > 0;

    /// <summary>The stored basis [D, Columns] (float64).</summary>
    public Tensor Basis(int input) => BasisBuffer(input).narrow(1, 0, Columns(input)).to(float64);

    /// <summary>Dimension of the old tasks' input space at <paramref name="input"/>.</summary>
    public long OldSpaceDimension(int input) => Retains(input) ? BasisBuffer(input).shape[0] - Columns(input) : Columns(input);

    /// <summary>The orthogonal projector [D, D] (float64) onto the old tasks' input space (zero before the first task).</summary>
    public Tensor OldSpaceProjector(int input)
    {
        using var scope = NewDisposeScope();
        var m = Basis(input);
        var onBasis = m.matmul(m.t());
        var projector = Retains(input) ? eye(m.shape[0], dtype: float64, device: m.device) - onBasis : onBasis;
        return projector.MoveToOuterDisposeScope();
    }

    /// <summary>InfLoRA's dimensionality-reduction matrix [rank, D] (float64) for a new task at <paramref name="input"/>,
    /// from the task's input moment C: with P the old-space projector, U from the SVD of (I - P) C (eq. 10-11; official
    /// _train), A = U_rank^T (I - P) / sqrt(3). The last factor I - P changes nothing while (I - P) C has at least rank
    /// directions; when it has fewer, it keeps the remaining rows out of the old space too.</summary>
    public Tensor DesignReduction(int input, Tensor moment, int rank)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var c = moment.to(float64).to(BasisBuffer(input).device);
        var free = eye(c.shape[0], dtype: float64, device: c.device) - OldSpaceProjector(input);
        var (u, _, _) = linalg.svd(free.matmul(c), fullMatrices: false);
        return u.narrow(1, 0, Math.Min(rank, u.shape[1])).t().matmul(free).div(Scalars.Of(Math.Sqrt(3))).MoveToOuterDisposeScope();
    }

    /// <summary>Adds a finished task's input second moments (one [D, D] per input) with the energy threshold of this
    /// task (InfLoRA's epsilon_t; official schedule lamb + (lame - lamb) t / T).</summary>
    public void Update(IReadOnlyList<Tensor> moments, double threshold)
    {
        if (moments.Count != bases.Count) throw new ArgumentException($"expected {bases.Count} input moments, got {moments.Count}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var first = TasksStored == 0;
        for (var g = 0; g < bases.Count; g++)
        {
            var activation = moments[g].to(float64).to(BasisBuffer(g).device);
            var dim = activation.shape[0];
            Tensor next;
            var retains = Retains(g);
            if (first)
            {
                // The first task keeps the fewest directions whose energy (squared singular values) stays below the threshold.
                var (u, s, _) = linalg.svd(activation, fullMatrices: false);
                var kept = Math.Max(CountBelow(Cumulative(Ratios(s, SquaredNorm(s))), threshold), 1);
                next = u.narrow(1, 0, kept);
                retains = false;
            }
            else if (!retains)
            {
                // Add the directions of the new task's input outside the stored space until the stored share of its
                // energy reaches the threshold.
                var m = Basis(g);
                var total = activation.square().sum().item<double>();
                var outside = activation - m.matmul(m.t().matmul(activation));
                var (u, s, _) = linalg.svd(outside, fullMatrices: false);
                var ratios = Ratios(s, total);
                var accumulated = (total - ratios.Sum() * total) / total;
                var added = 0;
                while (added < ratios.Length && accumulated < threshold) accumulated += ratios[added++];
                next = added == 0 ? m : torch.cat([m, u.narrow(1, 0, added)], 1);
                if (next.shape[1] > dim) next = next.narrow(1, 0, dim);
            }
            else
            {
                // The basis spans the free space: take out of it the new task's directions (inside the free space)
                // until what stays free carries less than 1 - threshold of the new task's energy.
                var m = Basis(g);
                var total = activation.square().sum().item<double>();
                var inside = m.matmul(m.t().matmul(activation));
                var (u, s, _) = linalg.svd(inside, fullMatrices: false);
                var ratios = Ratios(s, total);
                var accumulated = ratios.Sum();
                var removed = 0;
                while (removed < ratios.Length && accumulated >= 1 - threshold) accumulated -= ratios[removed++];
                if (removed == 0) next = m;
                else
                {
                    var taken = u.narrow(1, 0, removed);
                    var (left, _, _) = linalg.svd(m - taken.matmul(taken.t().matmul(m)), fullMatrices: true);
                    next = left.narrow(1, 0, Math.Max(0, m.shape[1] - removed));
                }
            }
            // Store whichever of the old space and its complement is smaller (official: the summary after the update).
            if (!retains && next.shape[1] > dim / 2.0)
            {
                var (full, _, _) = linalg.svd(next, fullMatrices: true);
                next = full.narrow(1, next.shape[1], dim - next.shape[1]);
                retains = true;
            }
            Store(g, next, retains);
        }
        updates.add_(Scalars.Of(1));
    }

    private void Store(int g, Tensor columnsInUse, bool retains)
    {
        BasisBuffer(g).zero_();
        if (columnsInUse.shape[1] > 0) BasisBuffer(g).narrow(1, 0, columnsInUse.shape[1]).copy_(columnsInUse);
        columns[g].fill_(columnsInUse.shape[1]);
        retain[g].fill_(retains ? 1 : 0);
    }

    private static double SquaredNorm(Tensor singularValues) => singularValues.square().sum().item<double>();

    private static double[] Ratios(Tensor singularValues, double total) =>
        singularValues.square().cpu().data<double>().Select(v => total > 0 ? v / total : 0).ToArray();

    private static double[] Cumulative(double[] values)
    {
        var result = new double[values.Length];
        var sum = 0.0;
        for (var i = 0; i < values.Length; i++) result[i] = sum += values[i];
        return result;
    }

    private static int CountBelow(double[] values, double threshold) => values.Count(v => v < threshold);
}
