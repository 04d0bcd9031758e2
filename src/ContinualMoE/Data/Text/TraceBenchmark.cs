namespace ContinualMoE.Data.Text;

/// <summary>
/// TRACE (Wang et al. 2023, "TRACE: A comprehensive benchmark for continual learning in large language models"), as its
/// official code reads it (github.com/BeyonderXX/TRACE at 462e39f, utils/data/raw_datasets.py LocalJsonFileDataset and
/// README "data preprocess"): a folder per dataset under the data path with train.json, eval.json and test.json, each
/// a JSON array of <c>{"prompt": ..., "answer": ...}</c> (JSON lines are read too, as Hugging Face's json loader does).
/// The prompt already holds the task's instruction, so an example is (instruction "", input = prompt, output = answer);
/// every TRACE task is generation, scored by the metric of <see cref="Metrics"/>. eval.json (validation) is not read.
/// </summary>
public static class TraceBenchmark
{
    /// <summary>The task order of TRACE's scripts (scripts/train_seq_cl.sh <c>--dataset_name</c>).</summary>
    public static IReadOnlyList<string> Order { get; } =
        ["C-STANCE", "FOMC", "MeetingBank", "Py150", "ScienceQA", "NumGLUE-cm", "NumGLUE-ds", "20Minuten"];

    /// <summary>Each task's reported metric (TRACE's evaluations/eval_*.py and the paper's Table 1): accuracy for the
    /// classification-like tasks, ROUGE-L for MeetingBank, edit similarity for Py150, SARI for 20Minuten, and the answer
    /// letter's accuracy for ScienceQA.</summary>
    public static IReadOnlyDictionary<string, TextMetric> Metrics { get; } = new Dictionary<string, TextMetric>(StringComparer.OrdinalIgnoreCase)
    {
        ["C-STANCE"] = TextMetric.ExactMatch,
        ["FOMC"] = TextMetric.ExactMatch,
        ["MeetingBank"] = TextMetric.RougeL,
        ["Py150"] = TextMetric.EditSimilarity,
        ["ScienceQA"] = TextMetric.FirstCharacterMatch,
        ["NumGLUE-cm"] = TextMetric.ExactMatch,
        ["NumGLUE-ds"] = TextMetric.ExactMatch,
        ["20Minuten"] = TextMetric.Sari,
    };

    /// <summary>Loads TRACE's tasks in its order, or the datasets of a comma-separated list, from the data path (the
    /// folder holding C-STANCE/, FOMC/, …; TRACE's download unpacks it as e.g. LLM-CL-Benchmark_5000/).</summary>
    public static IReadOnlyList<TextTaskData> Load(string root, string? orderOrList = null, TextTaskOptions? options = null)
    {
        options ??= new TextTaskOptions();
        TextFiles.RequireFolder(root, "TRACE data");
        var names = string.IsNullOrWhiteSpace(orderOrList) || orderOrList.Equals("trace", StringComparison.OrdinalIgnoreCase)
            ? Order
            : orderOrList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Canonical).ToList();
        return names.Select(name => LoadTask(root, name, options)).ToList();
    }

    private static string Canonical(string name) =>
        Order.FirstOrDefault(n => n.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ContinualMoEException($"unknown TRACE dataset '{name}'; valid names: {string.Join(", ", Order)}");

    private static TextTaskData LoadTask(string root, string name, TextTaskOptions options)
    {
        var folder = Path.Combine(root, name);
        if (!Directory.Exists(folder)) throw ContinualMoEException.ForFile(folder, $"TRACE dataset folder of '{name}' not found (expected train.json and test.json in it)");
        var train = Read(Path.Combine(folder, "train.json"));
        var test = Read(Path.Combine(folder, "test.json"));
        return new TextTaskData(name,
            TextSampling.Cap(train, null, options.TrainLimit, options.Seed, name + "/train"),
            TextSampling.Cap(test, null, options.TestLimit, options.Seed, name + "/test"),
            []);
    }

    private static List<TextExample> Read(string path)
    {
        var examples = TextFiles.ReadObjects(path)
            .Select(x => new TextExample("", TextFiles.Field(path, x.Item, x.Line, "prompt"), TextFiles.Field(path, x.Item, x.Line, "answer")))
            .ToList();
        if (examples.Count == 0) throw ContinualMoEException.ForFile(path, "no examples");
        return examples;
    }
}
