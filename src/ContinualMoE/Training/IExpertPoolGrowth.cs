namespace ContinualMoE.Training;

/// <summary>Implemented by learners whose expert pool grows with the data (SAMoE), so runs can show what the pool
/// learned: growth and the in/out-of-distribution split per task, and which tasks share experts.</summary>
public interface IExpertPoolGrowth
{
    ExpertPoolHistory PoolHistory { get; }
}

/// <summary>One finished task of a growing pool.</summary>
/// <param name="InDistribution">Training samples judged in-distribution for the experts that existed when the task began.</param>
/// <param name="OutOfDistribution">Training samples judged out-of-distribution (they decide how many experts are added).</param>
/// <param name="TrainableParameters">The learner's trainable parameters after this task (active experts and head).</param>
public sealed record ExpertPoolTask(int Task, int ExpertsAdded, int ActiveExperts, int InDistribution, int OutOfDistribution,
    long TrainableParameters);

/// <summary>
/// What a growing pool learned so far. <see cref="Usage"/>[t, m] is the share of task t's training samples routed to
/// expert m (top-1); <see cref="TaskSimilarity"/>[i, j] is the cosine similarity of tasks i and j's usage rows (1: the
/// same experts in the same proportions, 0: no expert in common). Rows and columns cover the finished tasks.
/// </summary>
public sealed record ExpertPoolHistory(int Capacity, IReadOnlyList<ExpertPoolTask> Tasks, double[,] Usage, double[,] TaskSimilarity);
