using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

public enum CovarianceKind { Diagonal, Full }

/// <summary>
/// Per-class Gaussian statistics of features (mean and covariance), kept as module buffers so they are saved with a
/// learner's state. SMoPE's classifier alignment uses diagonal variances; HiDe-Prompt's task-identity alignment and
/// task-adaptive prediction use full covariances plus 1e-4 I (as the official code does). The official SMoPE code
/// (trainer.py, _compute_mean, "multi-centroid" with one centroid) uses population variances (ddof 0) plus 1e-4.
/// </summary>
public sealed class GaussianClassStatistics : nn.Module
{
    private readonly Tensor means;       // [C, D]
    private readonly Tensor covariances; // [C, D, D] (full) or [C, D] (diagonal)
    private readonly Tensor known;       // [C] bool
    private readonly Tensor counts;      // [C] float64: samples behind each class's statistics (for Merge)

    public CovarianceKind Kind { get; }
    public double Ridge { get; }
    /// <summary>Divide by n - 1 (as torch.cov) rather than n (as numpy.var).</summary>
    public bool Unbiased { get; }

    public GaussianClassStatistics(int classes, int dim, CovarianceKind kind, double ridge = 1e-4, bool unbiased = true) : base(nameof(GaussianClassStatistics))
    {
        Kind = kind;
        Ridge = ridge;
        Unbiased = unbiased;
        means = zeros(classes, dim);
        covariances = kind == CovarianceKind.Full ? zeros(classes, dim, dim) : zeros(classes, dim);
        known = zeros(classes, dtype: ScalarType.Bool);
        counts = zeros(classes, dtype: ScalarType.Float64);
        register_buffer("means", means);
        register_buffer("covariances", covariances);
        register_buffer("known", known);
        register_buffer("counts", counts);
    }

    public Tensor Means => means;
    /// <summary>[C, D] variances or [C, D, D] covariances, ridge included.</summary>
    public Tensor Covariances => covariances;
    public Tensor Known => known;
    public bool IsKnown(int label) => known[label].item<bool>();

    /// <summary>Sets class <paramref name="label"/>'s statistics from its features [n, D] (covariance divided by n - 1 or
    /// n, see <see cref="Unbiased"/>; the ridge keeps full covariances positive definite for sampling).</summary>
    public void Set(int label, Tensor features)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var f = features.to(float32);
        var mean = f.mean([0]);
        var centred = f - mean;
        var denominator = Math.Max(1, Unbiased ? f.shape[0] - 1 : f.shape[0]);
        using var denominatorScalar = denominator.ToScalar();
        var ridge = Scalars.Of(Ridge);
        means[label].copy_(mean);
        if (Kind == CovarianceKind.Full)
            covariances[label].copy_(centred.t().matmul(centred).div(denominatorScalar).Plus(eye(f.shape[1], device: f.device).mul(ridge)));
        else
            covariances[label].copy_(centred.square().sum(dim: 0).div(denominatorScalar).Plus(ridge));
        using var isKnown = true.ToScalar();
        using var count = ((double)f.shape[0]).ToScalar();
        known[label].fill_(isKnown);
        counts[label].fill_(count);
    }

    /// <summary>Adds features [n, D] of class <paramref name="label"/> to its statistics: the result equals
    /// <see cref="Set"/> on all the class's features so far (Chan et al.'s pairwise update of count, mean and
    /// centred second moment). A class without statistics is simply set. Used where a class can come back in a later
    /// task (overlapping scenarios).</summary>
    public void Merge(int label, Tensor features)
    {
        if (!IsKnown(label))
        {
            Set(label, features);
            return;
        }
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var f = features.to(float64);
        var dim = f.shape[1];
        var countA = counts[label].item<double>();
        var countB = (double)f.shape[0];
        var total = countA + countB;
        var meanA = means[label].to(float64);
        var meanB = f.mean([0]);
        var centred = f - meanB;
        var delta = meanB - meanA;
        using var weightB = (countB / total).ToScalar();
        var mean = meanA.Plus(delta.mul(weightB));
        using var oldDenominator = Math.Max(1, countA - 1).ToScalar();
        using var newDenominator = Math.Max(1, total - 1).ToScalar();
        using var cross = (countA * countB / total).ToScalar();
        if (Kind == CovarianceKind.Full)
        {
            var ridge = eye(dim, dtype: float64, device: f.device).mul(Scalars.Of(Ridge));
            var moment = (covariances[label].to(float64) - ridge).mul(oldDenominator)
                         .Plus(centred.t().matmul(centred)).Plus(delta.outer(delta).mul(cross));
            covariances[label].copy_(moment.div(newDenominator).Plus(ridge));
        }
        else
        {
            var moment = covariances[label].to(float64).sub(Scalars.Of(Ridge)).mul(oldDenominator)
                .Plus(centred.square().sum(dim: 0)).Plus(delta.square().mul(cross));
            covariances[label].copy_(moment.div(newDenominator).Plus(Scalars.Of(Ridge)));
        }
        using var totalScalar = total.ToScalar();
        means[label].copy_(mean);
        counts[label].fill_(totalScalar);
    }

    /// <summary>How many samples class <paramref name="label"/>'s statistics were computed from (0 if unknown).</summary>
    public double Count(int label) => counts[label].item<double>();

    /// <summary>Draws <paramref name="count"/> features of class <paramref name="label"/> from its Gaussian.</summary>
    public Tensor Sample(int label, int count, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var mean = means[label];
        var noise = randn(count, mean.shape[0], generator: generator, device: mean.device);
        var sample = Kind == CovarianceKind.Full
            ? mean.Plus(noise.matmul(linalg.cholesky(covariances[label]).t()))
            : mean.Plus(noise * covariances[label].sqrt());
        return sample.MoveToOuterDisposeScope();
    }

    /// <summary>Features and labels drawn from every class in <paramref name="classes"/>, shuffled.</summary>
    public (Tensor Features, Tensor Labels) SampleClasses(IEnumerable<int> classes, int perClass, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var list = classes.ToList();
        var features = cat(list.Select(c => Sample(c, perClass, generator)).ToArray(), 0);
        var labels = cat(list.Select(c => full(perClass, Scalars.Integer(c), dtype: int64, device: means.device)).ToArray(), 0);
        var order = randperm(labels.shape[0], generator: generator, device: means.device);
        return (features[order].MoveToOuterDisposeScope(), labels[order].MoveToOuterDisposeScope());
    }
}
