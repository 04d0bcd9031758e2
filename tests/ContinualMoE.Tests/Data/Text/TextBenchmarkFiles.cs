using System.Text.Json;

namespace ContinualMoE.Tests.Data.Text;

/// <summary>Writes small benchmark folders in the real layouts, with synthetic rows (no real data).</summary>
internal static class TextBenchmarkFiles
{
    /// <summary>An O-LoRA CL_Benchmark dataset: family/name/{train,dev,test}.json as JSON arrays of {label, sentence},
    /// and labels.json.</summary>
    public static void WriteClDataset(string benchmark, string family, string name, string[] labels, int trainPerLabel, int testPerLabel)
    {
        var folder = Path.Combine(benchmark, family, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "labels.json"), JsonSerializer.Serialize(labels));
        var test = Rows(name, labels, testPerLabel, "test");
        File.WriteAllText(Path.Combine(folder, "train.json"), Rows(name, labels, trainPerLabel, "train"));
        File.WriteAllText(Path.Combine(folder, "dev.json"), test);
        File.WriteAllText(Path.Combine(folder, "test.json"), test);
    }

    private static string Rows(string name, string[] labels, int perLabel, string split)
    {
        var rows = new List<Dictionary<string, string>>();
        for (var i = 0; i < perLabel; i++)
            foreach (var label in labels)
                rows.Add(new() { ["label"] = label, ["sentence"] = $"Title: {name} {split} {i}\nText: synthetic text about {label} number {i}.\n" });
        return JsonSerializer.Serialize(rows);
    }

    /// <summary>The four datasets of orders 1-3 with their label lists (as in O-LoRA's labels.json files).</summary>
    public static void WriteFourTaskBenchmark(string benchmark, int trainPerLabel = 3, int testPerLabel = 2)
    {
        WriteClDataset(benchmark, "TC", "agnews", ["World", "Sports", "Business", "Science or Technology"], trainPerLabel, testPerLabel);
        WriteClDataset(benchmark, "TC", "dbpedia", ["Company", "Educational Institution", "Artist"], trainPerLabel, testPerLabel);
        WriteClDataset(benchmark, "TC", "yahoo", ["Society & Culture", "Science & Mathematics"], trainPerLabel, testPerLabel);
        WriteClDataset(benchmark, "SC", "amazon", ["very negative", "negative", "neutral", "positive", "very positive"], trainPerLabel, testPerLabel);
    }

    /// <summary>O-LoRA's configs/instruction_config.json layout with synthetic instruction texts.</summary>
    public static void WriteInstructionConfig(string path, params string[] families)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var config = families.ToDictionary(f => f, f => new[] { new Dictionary<string, string> { ["instruction_type"] = "zero-shot", ["instruction"] = $"Instruction for {f}.\n" } });
        File.WriteAllText(path, JsonSerializer.Serialize(config));
    }

    /// <summary>A Zhang et al. (2015) CSV file: quoted fields, "" for a quote, the class index first.</summary>
    public static void WriteCsv(string path, IEnumerable<string[]> rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, rows.Select(r => string.Join(",", r.Select(f => "\"" + f.Replace("\"", "\"\"") + "\""))));
    }

    /// <summary>A TRACE dataset folder: train/eval/test.json as JSON arrays of {prompt, answer}.</summary>
    public static void WriteTraceDataset(string root, string name, int train, int test)
    {
        var folder = Path.Combine(root, name);
        Directory.CreateDirectory(folder);
        string Split(string split, int count) => JsonSerializer.Serialize(Enumerable.Range(0, count)
            .Select(i => new Dictionary<string, string> { ["prompt"] = $"{name} {split} question {i}?", ["answer"] = $"answer {i}" }), new JsonSerializerOptions { WriteIndented = true });
        File.WriteAllText(Path.Combine(folder, "train.json"), Split("train", train));
        File.WriteAllText(Path.Combine(folder, "eval.json"), Split("eval", test));
        File.WriteAllText(Path.Combine(folder, "test.json"), Split("test", test));
    }
}
